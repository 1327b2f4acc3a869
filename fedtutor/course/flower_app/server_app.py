"""The ServerApp: the server's side of federated learning, started by the SuperLink for a run.

A copy of fedtutor.flower's reference ServerApp, as a file of your own to read and edit
(notebook 11). The rounds themselves are fedtutor.flower.fedavg_rounds: send the global model
and this round's config to every client, collect the replies, average them with Flower's FedAvg.
"""

from flwr.app import Context
from flwr.serverapp import Grid, ServerApp

from fedtutor.flower import DeploymentConfig, fedavg_rounds, progress_writer

app = ServerApp()


def round_config(server_round: int, config: DeploymentConfig) -> dict:
    """What every client receives with round `server_round` (1, 2, ...), besides the weights."""
    return {"server-round": server_round}


@app.main()
def main(grid: Grid, context: Context) -> None:
    config = DeploymentConfig.from_run_config(dict(context.run_config))
    report = progress_writer(context.run_config.get("progress-file"))  # one line per round for the launcher
    try:
        fedavg_rounds(grid, config, report, round_config=round_config)
    except Exception as err:
        report({"error": f"{type(err).__name__}: {err}"})  # the launcher shows it instead of waiting
        raise
