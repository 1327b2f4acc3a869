"""The ClientApp: what a SuperNode runs for every message the server sends it.

A copy of fedtutor.flower's reference ClientApp, as a file of your own to read and edit
(notebook 11). `flwr run` sends it to the SuperLink; each SuperNode runs it on its own data.
"""

from dataclasses import replace

import torch
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from fedtutor.flower import DeploymentConfig, local_update, partition_for

app = ClientApp()


@app.train()
def train(msg: Message, context: Context) -> Message:
    config = DeploymentConfig.from_run_config(dict(context.run_config))  # the same for every client
    torch.set_num_threads(config.threads_per_client)  # several clients share the cores
    partition_id = int(context.node_config["partition-id"])  # which client am I?
    client = partition_for(config, partition_id, int(context.node_config["num-partitions"]))

    settings = msg.content["config"]  # this round's config, from round_config in server_app.py
    server_round = int(settings["server-round"])
    lr = config.lr  # the learning rate this client trains with
    global_state = msg.content["arrays"].to_torch_state_dict()
    new_state, train_loss = local_update(replace(config, lr=lr), global_state, client, server_round)

    metrics = MetricRecord({"num-examples": len(client), "train-loss": train_loss, "lr": lr})
    who = ConfigRecord({"partition-id": partition_id})
    return Message(
        content=RecordDict({"arrays": ArrayRecord(new_state), "metrics": metrics, "client": who}), reply_to=msg
    )
