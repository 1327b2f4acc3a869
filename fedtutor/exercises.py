"""Exercises with automatic feedback: ``check(id, answer)``, ``hint(id)``, ``solution(id)``.

Each exercise is a checker function registered under an id like ``"02.1"`` (notebook 02,
exercise 1). A checker raises ``Wrong("...")`` with *specific* feedback (what is off and
by how much), never a bare "wrong"; ``check`` turns silence into a green tick. Because a
wrong answer raises, the source notebooks (which contain the solutions) fail in CI the day
a solution stops being right, and a student copy fails loudly at the placeholder.

Sections below are per notebook, in course order.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch


class Wrong(AssertionError):  # noqa: N818 - named for how it reads to a learner: "Wrong: ..."
    """The answer is not right yet; the message says what to look at."""


@dataclass(frozen=True)
class Exercise:
    id: str
    checker: Callable[..., str | None]
    hint: str
    solution: str


EXERCISES: dict[str, Exercise] = {}


def exercise(exercise_id: str, hint: str, solution: str) -> Callable:
    """Register the decorated checker as exercise ``exercise_id``."""

    def register(checker: Callable[..., str | None]) -> Callable[..., str | None]:
        if exercise_id in EXERCISES:
            raise ValueError(f"Exercise {exercise_id} is registered twice.")
        EXERCISES[exercise_id] = Exercise(exercise_id, checker, hint.strip(), textwrap.dedent(solution).strip())
        return checker

    return register


def _get(exercise_id: str) -> Exercise:
    try:
        return EXERCISES[exercise_id]
    except KeyError:
        known = ", ".join(sorted(EXERCISES))
        raise KeyError(f"No exercise {exercise_id!r}. Known exercises: {known}.") from None


def check(exercise_id: str, *answer: Any) -> bool:
    """Check an answer; prints a tick and returns True, or raises ``Wrong`` with feedback."""
    if any(a is NotImplemented or a is ... for a in answer):
        raise Wrong(f"Exercise {exercise_id}: no answer yet. Replace the `...` with your code; hint({exercise_id!r}).")
    note = _get(exercise_id).checker(*answer)
    print(f"✅ Exercise {exercise_id}: correct." + (f" {note}" if note else ""))
    return True


def hint(exercise_id: str) -> None:
    """Print a nudge that does not give the answer away."""
    print(f"💡 Hint for {exercise_id}: {_get(exercise_id).hint}")


def solution(exercise_id: str) -> None:
    """Print one possible solution (try ``hint`` first!)."""
    print(f"# One solution for exercise {exercise_id}:\n{_get(exercise_id).solution}")


def _expect(condition: bool, feedback: str) -> None:
    if not condition:
        raise Wrong(feedback)


def _expect_tensor(value: Any, name: str, shape: tuple[int, ...] | None = None, dtype: torch.dtype | None = None):
    _expect(isinstance(value, torch.Tensor), f"{name} should be a torch.Tensor, got {type(value).__name__}.")
    if shape is not None:
        _expect(tuple(value.shape) == shape, f"{name} should have shape {shape}, got {tuple(value.shape)}.")
    if dtype is not None:
        _expect(value.dtype == dtype, f"{name} should have dtype {dtype}, got {value.dtype}.")


# ----------------------------------------------------------------------------- notebook 00: setup


@exercise(
    "00.1",
    hint="`fedtutor.quick_mode()` returns a bool; the environment variable that forces it is FEDTUTOR_QUICK.",
    solution="""
    answer = fedtutor.quick_mode()
    """,
)
def _check_quick_mode(answer: Any) -> str:
    import fedtutor

    _expect(isinstance(answer, bool), f"Answer with a bool (True/False), got {type(answer).__name__}.")
    actual = fedtutor.quick_mode()
    _expect(answer == actual, f"This kernel is in {'quick' if actual else 'full'} mode; you answered {answer}.")
    return f"You are in {'quick' if actual else 'full'} mode."


@exercise(
    "00.2",
    hint="`fedtutor.data.mnist_source()` returns a DataSource; look at its `n_train` attribute.",
    solution="""
    n_train = fedtutor.data.mnist_source().n_train
    """,
)
def _check_n_train(n_train: Any) -> str:
    from fedtutor.data import mnist_source

    source = mnist_source()
    _expect(isinstance(n_train, int), f"Answer with an int, got {type(n_train).__name__}.")
    _expect(
        n_train == source.n_train,
        f"{n_train:,} is not it: the data in use is {source.name}. Did you count test images too?",
    )
    return f"{source.name} has {n_train:,} training images."


# ----------------------------------------------------------------------------- notebook 01: PyTorch basics


@exercise(
    "01.1",
    hint="Give `x` shape (3, 1) and `y` shape (1, 4): broadcasting stretches both to (3, 4).",
    solution="""
    x = torch.arange(3.0).reshape(3, 1)  # (3, 1)
    y = torch.arange(4.0).reshape(1, 4)  # (1, 4)
    table = x * 10 + y  # (3, 4): table[i, j] = 10 * i + j
    """,
)
def _check_broadcast_table(table: Any) -> None:
    _expect_tensor(table, "table", shape=(3, 4))
    expected = torch.arange(3.0).reshape(3, 1) * 10 + torch.arange(4.0)
    wrong = (table.float() != expected).nonzero()
    if len(wrong):
        i, j = wrong[0].tolist()
        raise Wrong(f"table[{i}, {j}] is {table[i, j].item()}, expected {expected[i, j].item()} (10 * row + column).")


@exercise(
    "01.2",
    hint="Make `w` with requires_grad=True, compute `f = (w ** 3).sum()`, call `f.backward()`, read `w.grad`.",
    solution="""
    w = torch.tensor([1.0, 2.0, 3.0], requires_grad=True)
    f = (w**3).sum()
    f.backward()
    grad = w.grad  # d/dw of w^3 is 3 w^2
    """,
)
def _check_autograd(grad: Any) -> None:
    _expect(grad is not None, "grad is None: did you call f.backward() and use w.grad (with requires_grad=True)?")
    _expect_tensor(grad, "grad", shape=(3,))
    expected = 3 * torch.tensor([1.0, 2.0, 3.0]) ** 2
    _expect(
        torch.allclose(grad, expected),
        f"grad is {grad.tolist()}, expected {expected.tolist()} (the derivative of w**3 is 3*w**2). "
        "If it is larger, gradients accumulated over several backward() calls: recreate w.",
    )


@exercise(
    "01.3",
    hint="Train for more steps or a larger learning rate; the fitted line should be close to y = 2x + 1.",
    solution="""
    model = nn.Linear(1, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for _ in range(300):
        opt.zero_grad()
        loss = F.mse_loss(model(x_toy), y_toy)
        loss.backward()
        opt.step()
    """,
)
def _check_line_fit(model: Any) -> str:
    _expect(isinstance(model, torch.nn.Linear), f"model should be an nn.Linear(1, 1), got {type(model).__name__}.")
    w, b = model.weight.item(), model.bias.item()
    _expect(abs(w - 2) < 0.15, f"The slope is {w:.3f}, the data's is 2. Train longer or raise the learning rate.")
    _expect(abs(b - 1) < 0.15, f"The intercept is {b:.3f}, the data's is 1. Train longer or raise the learning rate.")
    return f"Fitted y = {w:.2f} x + {b:.2f}."


# ----------------------------------------------------------------------------- notebook 02: MNIST classifier


@exercise(
    "02.1",
    hint="Count parameters with `sum(p.numel() for p in model.parameters())`; a Linear(a, b) has a*b + b.",
    solution="""
    n_params_2nn = sum(p.numel() for p in MLP2NN().parameters())
    """,
)
def _check_2nn_params(n_params: Any) -> None:
    expected = 784 * 200 + 200 + 200 * 200 + 200 + 200 * 10 + 10
    _expect(isinstance(n_params, int), f"Answer with an int, got {type(n_params).__name__}.")
    _expect(
        n_params == expected,
        f"{n_params:,} is off by {n_params - expected:+,}. Did you forget the biases (one per output unit)?",
    )


@exercise(
    "02.2",
    hint="`predictions == labels` gives a bool tensor; `.float().mean()` of it is the accuracy. "
    "Per class: select the rows where labels == c first.",
    solution="""
    per_class = torch.stack([(predictions[labels == c] == c).float().mean() for c in range(10)])
    """,
)
def _check_per_class_accuracy(per_class: Any, predictions: torch.Tensor, labels: torch.Tensor) -> str:
    _expect_tensor(per_class, "per_class", shape=(10,))
    expected = torch.stack([(predictions[labels == c] == c).float().mean() for c in range(10)])
    bad = ((per_class.float() - expected).abs() > 1e-6).nonzero().flatten()
    if len(bad):
        c = int(bad[0])
        raise Wrong(
            f"Class {c}: you have {per_class[c].item():.4f}, expected {expected[c].item():.4f}. "
            "Divide the correct predictions of that class by the number of test examples *of that class*."
        )
    worst = int(expected.argmin())
    return f"The hardest digit for this model is {worst} ({expected[worst].item():.1%})."


@exercise(
    "02.3",
    hint="Load into a *fresh* model with `load_checkpoint(CNN(), path)` and evaluate it on the test tensors.",
    solution="""
    restored = load_checkpoint(CNN(), checkpoint_path)
    restored_acc = evaluate(restored, x_test, y_test)[1]
    """,
)
def _check_restored(restored: Any, reference_acc: float, x_test: torch.Tensor, y_test: torch.Tensor) -> None:
    from fedtutor.training import evaluate

    _expect(isinstance(restored, torch.nn.Module), f"restored should be a model, got {type(restored).__name__}.")
    acc = evaluate(restored, x_test, y_test)[1]
    _expect(
        abs(acc - reference_acc) < 1e-9,
        f"The restored model scores {acc:.2%}, the trained one {reference_acc:.2%}: "
        "the weights were not loaded (a fresh model scores about 10%).",
    )


# ----------------------------------------------------------------------------- notebook 08: privacy


@exercise(
    "08.1",
    hint="For h = W1 x + b1, dL/dW1[i, :] = dL/db1[i] * x. Pick a row i whose bias gradient is not 0 "
    "(grads[1] is dL/db1) and divide.",
    solution="""
    i = grads[1].abs().argmax()  # a unit whose bias gradient is far from 0 (not a dead ReLU)
    recovered = (grads[0][i] / grads[1][i]).reshape(1, 1, 28, 28)
    """,
)
def _check_analytic_inversion(recovered: Any, original: torch.Tensor) -> str:
    _expect(isinstance(recovered, torch.Tensor), f"recovered should be a tensor, got {type(recovered).__name__}.")
    _expect(recovered.numel() == 784, f"recovered should hold 784 pixels (one row of dL/dW1), got {recovered.numel()}.")
    recovered = recovered.detach().reshape(original.shape)
    _expect(
        bool(torch.isfinite(recovered).all()),
        "recovered has inf or NaN: that row's bias gradient is 0 (a ReLU that never fired). Pick the row with the "
        "largest |grads[1]|.",
    )
    error = (recovered - original).abs().max().item()
    same_shape = torch.nn.functional.cosine_similarity(recovered.flatten(), original.flatten(), dim=0).abs() > 0.99
    _expect(
        error < 1e-3 or not same_shape,
        "Right picture, wrong scale: divide row i of dL/dW1 by the bias gradient dL/db1[i] of the same row.",
    )
    _expect(error < 1e-3, f"recovered differs from the image by up to {error:.3g}: use row i of dL/dW1 and dL/db1.")
    return "No optimization needed: one division recovers the image exactly."


@exercise(
    "08.2",
    hint="The masks are the same in both rounds, so they cancel in round2 - round1. Decode the difference.",
    solution="""
    leak = decode(round2 - round1)
    """,
)
def _check_mask_reuse(leak: Any, true_difference: torch.Tensor) -> str:
    _expect(isinstance(leak, torch.Tensor), f"leak should be a tensor, got {type(leak).__name__}.")
    _expect(leak.dtype != torch.int64, "leak is still a ring element (int64): decode() it to floats.")
    _expect(leak.shape == true_difference.shape, f"leak should have shape {tuple(true_difference.shape)}.")
    error = (leak.double() - true_difference.double()).abs().max().item()
    _expect(error < 1e-4, f"leak is off by up to {error:.3g}: subtract the two masked uploads, then decode.")
    return "Reusing masks leaks how the update changed: every round needs fresh seeds."


@exercise(
    "08.3",
    hint="dp_epsilon(sigma, rounds=100, delta=1e-5) falls as sigma grows: try sigma = 0.01, 0.02, ... "
    "and keep the first one at or under the budget.",
    solution="""
    sigma = next(s / 100 for s in range(1, 10_000) if dp_epsilon(s / 100, rounds=100, delta=1e-5) <= 8)
    """,
)
def _check_noise_for_budget(sigma: Any) -> str:
    from fedtutor.privacy import dp_epsilon

    _expect(isinstance(sigma, (int, float)) and sigma > 0, f"sigma should be a positive number, got {sigma!r}.")
    eps = dp_epsilon(sigma, rounds=100, delta=1e-5)
    _expect(eps <= 8, f"With sigma = {sigma:g}, epsilon is {eps:.2f} > 8: add more noise.")
    _expect(
        dp_epsilon(sigma - 0.01, rounds=100, delta=1e-5) > 8,
        f"sigma = {sigma:g} meets the budget, but so does {sigma - 0.01:.2f}: find the smallest (to 0.01).",
    )
    return f"sigma = {sigma:g} gives epsilon = {eps:.2f} for 100 rounds (delta = 1e-5)."


# ----------------------------------------------------------------------------- notebooks 03-05: workers, pointers


def _only_worker_value(worker: Any, object_id: int | None = None) -> Any:
    """What a worker holds (the checker may look; the learner's pointers may not)."""
    from fedtutor.workers import VirtualWorker

    _expect(isinstance(worker, VirtualWorker), f"Pass the worker itself, got {type(worker).__name__}.")
    return worker.objects[object_id] if object_id is not None else worker.objects


@exercise(
    "03.1",
    hint="Send `v` to alice, then use the pointer as if it were the tensor: `(v_ptr * v_ptr).sum()` "
    "or `v_ptr @ v_ptr`. Only the final result should travel back.",
    solution="""
    v_ptr = alice.send(torch.arange(6.0))
    dot = (v_ptr @ v_ptr).get()
    """,
)
def _check_remote_dot(dot: Any, alice: Any) -> str:
    _only_worker_value(alice)
    _expect_tensor(dot, "dot")
    _expect(dot.numel() == 1, f"dot should be one number, got shape {tuple(dot.shape)}: sum the products.")
    _expect(dot.item() == 55.0, f"dot is {dot.item():g}; 0² + 1² + ... + 5² = 55. Use torch.arange(6.0).")
    replies = alice.log.where(kind="get", sender="alice")
    _expect(bool(replies), "alice never sent you a result: bring the dot product back with .get().")
    _expect(
        max(m.nbytes for m in replies) <= 4,
        f"alice sent you {max(m.nbytes for m in replies)} bytes at once: that is the whole vector. "
        "Compute on the pointer and get only the single result (4 bytes).",
    )
    return "Only 4 bytes came back: the vector never left alice."


@exercise(
    "03.2",
    hint="Send the tensor to bob first; then send *that pointer* to alice. Keep the pointer alice's send returns.",
    solution="""
    chain = alice.send(bob.send(torch.tensor([42.0])))
    """,
)
def _check_chain(chain: Any) -> str:
    from fedtutor.workers import Pointer

    _expect(isinstance(chain, Pointer), f"chain should be a Pointer, got {type(chain).__name__}.")
    _expect(chain.location.name == "alice", f"chain points to {chain.location.name}; it should point to alice.")
    inner = chain.location.objects.get(chain.id)
    _expect(isinstance(inner, Pointer), f"alice holds a {type(inner).__name__}, not a pointer to bob.")
    _expect(inner.location.name == "bob", f"alice's pointer leads to {inner.location.name}, not bob.")
    value = inner.location.objects.get(inner.id)
    _expect(
        isinstance(value, torch.Tensor) and torch.equal(value, torch.tensor([42.0])),
        f"bob holds {value!r}, expected tensor([42.]).",
    )
    return "me -> alice -> bob -> tensor([42.]): chain.get().get() would bring it home."


@exercise(
    "03.3",
    hint="Compute the mean through the pointer (`salaries.mean()`), let bob release *that* pointer "
    "with `bob.release(...)`, then `.get()` it. Do not release `salaries` itself.",
    solution="""
    mean_ptr = salaries.mean()
    bob.release(mean_ptr)
    mean_salary = mean_ptr.get().item()
    """,
)
def _check_private_mean(mean_salary: Any, salaries: Any) -> str:
    from fedtutor.workers import Pointer

    _expect(isinstance(salaries, Pointer), "Pass the `salaries` pointer as the second argument.")
    _expect(isinstance(mean_salary, (int, float)), f"mean_salary should be a number (.item()), got {mean_salary!r}.")
    true_mean = salaries.location.objects[salaries.id].mean().item()
    _expect(abs(mean_salary - true_mean) < 1e-3, f"{mean_salary:g} is not the mean salary held by bob.")
    _expect(salaries.private, "bob released the raw salaries: everyone can read them now. Release only the mean.")
    return "The mean left bob; the salaries did not."


@exercise(
    "04.1",
    hint="Copy the remote loop above, with alice's pointers only: send model and optimizer together, "
    "then zero_grad, loss, backward, step on the pointers, and `.get()` the model at the end.",
    solution="""
    model = TinyLinear(2, 1)
    model_ptr, opt_ptr = alice.send(model, torch.optim.SGD(model.parameters(), lr=0.1))
    for _ in range(200):
        opt_ptr.zero_grad()
        loss_ptr = F.mse_loss(model_ptr(alice_x), alice_y)
        loss_ptr.backward()
        opt_ptr.step()
    model = model_ptr.get()
    """,
)
def _check_alice_fit(model: Any, alice: Any) -> str:
    _expect(isinstance(model, torch.nn.Module), f"model should be the trained nn.Module, got {type(model).__name__}.")
    held = [v for v in _only_worker_value(alice).values() if isinstance(v, torch.Tensor) and v.ndim == 2]
    x = next((v for v in held if v.shape[1] == 2), None)
    y = next((v for v in held if v.shape[1] == 1), None)
    _expect(x is not None and y is not None, "alice no longer holds her data (x: (N, 2), y: (N, 1)); rerun the setup.")
    _expect(bool(alice.log.where(kind="command", receiver="alice")), "alice ran no commands: train through pointers.")
    design = torch.cat([x, torch.ones(len(x), 1)], dim=1)  # (N, 3): least squares gives the best line
    best = torch.linalg.lstsq(design, y).solution.flatten()  # (3,)
    with torch.no_grad():
        mine = torch.cat([model.linear.weight.flatten(), model.linear.bias]) if hasattr(model, "linear") else None
    _expect(mine is not None and mine.numel() == 3, "model should be a TinyLinear(2, 1).")
    gap = (mine - best).abs().max().item()
    _expect(gap < 0.05, f"Your weights {mine.tolist()} are {gap:.3f} from the best fit {best.tolist()}: train longer.")
    w1, w2, b = mine.tolist()
    return f"Fitted y = {w1:.2f} x1 + {w2:.2f} x2 + {b:.2f} without seeing alice's data."


@exercise(
    "04.2",
    hint="A round sends the model to the worker and gets it back. Each float32 parameter is 4 bytes; "
    "count the CNN's parameters with count_parameters(CNN()).",
    solution="""
    round_bytes = 2 * 4 * count_parameters(CNN())
    """,
)
def _check_round_bytes(round_bytes: Any) -> str:
    from fedtutor.models import CNN, count_parameters

    params = count_parameters(CNN())
    _expect(isinstance(round_bytes, int), f"Answer with an int, got {type(round_bytes).__name__}.")
    _expect(round_bytes != params, "That is the number of parameters; each float32 takes 4 bytes.")
    _expect(round_bytes != 4 * params, "That is one way only: the model goes to the worker *and* comes back.")
    _expect(round_bytes == 8 * params, f"{round_bytes:,} bytes is not it; expected 2 x 4 x {params:,}.")
    return f"{round_bytes / 1e6:.1f} MB per client per round, whatever the size of its data."


@exercise(
    "04.3",
    hint="For a linear layer and one example, the weight gradient is (dL/dout) * x and the bias gradient "
    "is dL/dout. Compare the released weights and bias with the ones you sent: divide the change.",
    solution="""
    delta_w = released.linear.weight - sent.linear.weight  # (1, 3): -lr * g * x
    delta_b = released.linear.bias - sent.linear.bias  # (1,):   -lr * g
    recovered = (delta_w / delta_b).flatten()  # (3,): x, exactly
    """,
)
def _check_recovered_point(recovered: Any, carol: Any) -> str:
    secrets = [v for v in _only_worker_value(carol).values() if isinstance(v, torch.Tensor) and v.numel() == 3]
    _expect(bool(secrets), "carol does not hold her secret point any more; rerun the cells above.")
    _expect_tensor(recovered, "recovered")
    secret = secrets[0].flatten()
    _expect(recovered.numel() == 3, f"recovered should hold 3 numbers (carol's x), got shape {tuple(recovered.shape)}.")
    error = (recovered.detach().flatten() - secret).abs().max().item()
    _expect(error < 1e-3, f"recovered is off by up to {error:.3g}. Divide the weight change by the bias change.")
    return "One released model update gave away carol's private data point exactly."


@exercise(
    "05.1",
    hint='grid.search("#hospital_b", "#labels") gives one pointer. Count with (labels == 7).sum() on it; '
    "the result is private until hospital_b releases it.",
    solution="""
    labels_b = grid.search("#hospital_b", "#labels")[0]
    count_ptr = (labels_b == 7).sum()
    grid["hospital_b"].release(count_ptr)
    n_sevens = count_ptr.get().item()
    """,
)
def _check_sevens(n_sevens: Any, grid: Any) -> str:
    labels_ptr = grid.search("#hospital_b", "#labels")[0]
    truth = int((labels_ptr.location.objects[labels_ptr.id] == 7).sum())
    _expect(isinstance(n_sevens, int), f"Answer with an int (.item()), got {type(n_sevens).__name__}.")
    _expect(n_sevens == truth, f"{n_sevens} is not the number of 7s at hospital_b. Did you search #hospital_b?")
    _expect(labels_ptr.private, "hospital_b released all its labels to answer one count: release only the count.")
    return f"hospital_b holds {truth} sevens; you saw one number, not a single label."


@exercise(
    "05.2",
    hint="The sizes are metadata you may read: ptr.shape.get()[0] for each #images pointer. "
    "Each weight is n_k / n, and they add up to 1.",
    solution="""
    sizes = [ptr.shape.get()[0] for ptr in grid.search("#mnist", "#images")]
    fedavg_weights = [n / sum(sizes) for n in sizes]
    """,
)
def _check_fedavg_weights(fedavg_weights: Any, grid: Any) -> str:
    sizes = [p.shape.get()[0] for p in grid.search("#mnist", "#images")]
    expected = [n / sum(sizes) for n in sizes]
    weights = [float(w) for w in fedavg_weights]
    _expect(len(weights) == len(expected), f"Give one weight per hospital ({len(expected)}), got {len(weights)}.")
    _expect(abs(sum(weights) - 1) < 1e-6, f"The weights add up to {sum(weights):.4f}; divide by the total.")
    worst = max(abs(w - e) for w, e in zip(weights, expected, strict=True))
    shown = [round(w, 4) for w in weights]
    _expect(worst < 1e-6, f"Expected {[round(e, 4) for e in expected]} (n_k / n), got {shown}.")
    return "A hospital with 10x the data gets 10x the say in the average."


@exercise(
    "05.3",
    hint="a_ptr.weight and b_ptr.weight are pointers on secure_worker; (3 * wa + 1 * wb) / 4 runs there too. "
    "secure_worker holds public models here, so .get() the result.",
    solution="""
    avg_weight = ((3 * a_ptr.weight + 1 * b_ptr.weight) / 4).get()
    """,
)
def _check_weighted_average(avg_weight: Any, a: torch.nn.Module, b: torch.nn.Module) -> str:
    _expect_tensor(avg_weight, "avg_weight", shape=tuple(a.weight.shape))
    expected = (3 * a.weight + b.weight) / 4
    plain = (a.weight + b.weight) / 2
    if torch.allclose(avg_weight, plain, atol=1e-6) and not torch.allclose(plain, expected, atol=1e-6):
        raise Wrong("That is the plain average: weight the first model 3 times as much as the second (3:1).")
    _expect(torch.allclose(avg_weight, expected, atol=1e-6), "avg_weight is not (3 * a + 1 * b) / 4 of the weights.")
    return "Averaged on secure_worker: you only saw the average."


# ----------------------------------------------------------------------------- notebook 09: Flower deployment


@exercise(
    "09.1",
    hint="Wrap `CNN().state_dict()` in an `ArrayRecord` and add up `.numpy().nbytes` of its arrays.",
    solution="""
    cnn_record = ArrayRecord(CNN().state_dict())
    cnn_upload_bytes = sum(array.numpy().nbytes for array in cnn_record.values())
    """,
)
def _check_cnn_upload(cnn_upload_bytes: Any) -> str:
    expected = 1_663_370 * 4  # float32 parameters of McMahan's CNN
    _expect(isinstance(cnn_upload_bytes, int), f"Answer with an int (bytes), got {type(cnn_upload_bytes).__name__}.")
    _expect(
        cnn_upload_bytes != 1_663_370,
        "That is the number of parameters; each float32 parameter takes 4 bytes on the wire.",
    )
    _expect(
        cnn_upload_bytes == expected,
        f"{cnn_upload_bytes:,} bytes is off by {cnn_upload_bytes - expected:+,}: the CNN has 1,663,370 float32 "
        "parameters. Did you count every array of the record?",
    )
    return f"{expected / 1e6:.1f} MB per client per round, each way: 8x the 2NN."


@exercise(
    "09.2",
    hint="Each record of `history.records` has `bytes_up` and `bytes_down`; add both, over all rounds, "
    "then divide by 1e6.",
    solution="""
    total_mb = sum(r["bytes_up"] + r["bytes_down"] for r in history.records) / 1e6
    """,
)
def _check_total_mb(total_mb: Any, history: Any) -> str:
    up = sum(r["bytes_up"] for r in history.records) / 1e6
    down = sum(r["bytes_down"] for r in history.records) / 1e6
    _expect(isinstance(total_mb, (int, float)), f"Answer with a number of MB, got {type(total_mb).__name__}.")
    _expect(abs(total_mb - up) > 1e-9, "That is only the uploads: the global model is also sent down to every client.")
    _expect(abs(total_mb - down) > 1e-9, "That is only the downloads: every client that replied also uploaded.")
    _expect(
        abs(total_mb - (up + down)) < 1e-6,
        f"{total_mb:.3f} MB is not it; up {up:.3f} + down {down:.3f} = {up + down:.3f} MB. "
        "Divide bytes by 1e6 (not 2**20).",
    )
    return f"{down - up:.2f} MB more went down than up: the crashed client's download was wasted."


@exercise(
    "09.3",
    hint="`flower.partition_for(DeploymentConfig(clients=5, partition='shards', seed=SEED), 0, 5)` gives "
    "client 0's data; count the distinct values of its `.y`.",
    solution="""
    shard_client = flower.partition_for(DeploymentConfig(clients=5, partition="shards", seed=SEED), 0, 5)
    digits_of_client_0 = len(shard_client.y.unique())
    """,
)
def _check_shard_digits(digits_of_client_0: Any, seed: int) -> str:
    from fedtutor.flower import DeploymentConfig, partition_for

    client = partition_for(DeploymentConfig(clients=5, partition="shards", seed=seed), 0, 5)
    expected = len(client.y.unique())
    _expect(isinstance(digits_of_client_0, int), f"Answer with an int, got {type(digits_of_client_0).__name__}.")
    _expect(
        digits_of_client_0 == expected,
        f"{digits_of_client_0} is not it. Use partition='shards' with 5 clients and seed={seed}, "
        "then count distinct labels (not examples).",
    )
    return f"Client 0 holds {expected} digit(s): on a real deployment, no one could see that but client 0."


# ----------------------------------------------------------------------------- notebooks 06-07: FedAvg, non-IID data


@exercise(
    "06.1",
    hint="Upload per round = (clients per round) x (parameters) x (bytes per float32 = 4). "
    "With K=100, C=0.1 that is 10 clients; `count_parameters(CNN())` gives the parameters.",
    solution="""
    mb_upload_cnn = 10 * count_parameters(CNN()) * 4 / 1e6
    """,
)
def _check_cnn_upload(mb: Any) -> str:
    from fedtutor.models import CNN, count_parameters

    expected = 10 * count_parameters(CNN()) * 4 / 1e6
    _expect(isinstance(mb, (int, float)), f"Answer with a number of MB, got {type(mb).__name__}.")
    ratio = mb / expected if expected else 0
    _expect(abs(ratio - 2) > 1e-6, f"{mb:.2f} MB is twice the answer: count only the upload, not the download too.")
    _expect(abs(ratio - 0.25) > 1e-6, f"{mb:.2f} MB: a float32 weighs 4 bytes; multiply by 4.")
    _expect(abs(ratio - 0.1) > 1e-6, f"{mb:.2f} MB is one client's upload; 10 clients take part each round.")
    _expect(abs(mb - expected) < 1e-3, f"{mb:.3f} MB is not it: clients per round x parameters x 4 bytes / 1e6.")
    per_client_s = expected / 10 * 8 / 10  # MB -> Mbit, over a 10 Mbit/s uplink
    return f"{expected:.1f} MB a round; each client's {expected / 10:.2f} MB takes ~{per_client_s:.0f} s at 10 Mbit/s."


@exercise(
    "06.2",
    hint="Multiply each update by its client's size, add them up, divide by the total size.",
    solution="""
    aggregate = sum(n * d for n, d in zip(sizes, deltas, strict=True)) / sum(sizes)
    """,
)
def _check_aggregate(aggregate: Any, deltas: list[torch.Tensor], sizes: list[int]) -> None:
    _expect_tensor(aggregate, "aggregate", shape=tuple(deltas[0].shape))
    expected = sum(n * d for n, d in zip(sizes, deltas, strict=True)) / sum(sizes)
    plain = sum(deltas) / len(deltas)
    _expect(
        not torch.allclose(aggregate, plain, atol=1e-6) or torch.allclose(plain, expected),
        "That is the plain mean: FedAvg weights each update by its client's number of examples.",
    )
    _expect(
        torch.allclose(aggregate, expected, atol=1e-6),
        f"aggregate[0] is {aggregate[0].item():.4f}, expected {expected[0].item():.4f}. "
        "Divide by the total number of examples, sum(sizes).",
    )


@exercise(
    "06.3",
    hint="`fl.FedAvg(fraction=C, epochs=1, batch_size=10, lr=LR_FEDAVG)` with `fl.run_federated(...)`, "
    "then `history.rounds_to(TARGET)`.",
    solution="""
    fedtutor.seed_everything(SEED)
    fedavg_e1 = fl.run_federated(
        MLP2NN(), clients, test, fl.FedAvg(fraction=C, epochs=1, batch_size=10, lr=LR_FEDAVG), rounds=rounds_fedavg,
        seed=SEED, label="FedAvg (E=1, B=10)", live=False,
    )
    rounds_e1 = fedavg_e1.rounds_to(TARGET)
    """,
)
def _check_fedavg_e1(history: Any, rounds: Any, target: float) -> str:
    from fedtutor.federated import History

    _expect(isinstance(history, History), f"Pass the History from run_federated, got {type(history).__name__}.")
    config = history.config
    _expect(config.get("epochs") == 1, f"This run used E={config.get('epochs')}; the exercise asks for E=1.")
    _expect(config.get("batch_size") == 10, f"This run used B={config.get('batch_size')}; use batch_size=10.")
    actual = history.rounds_to(target)
    _expect(rounds == actual, f"You answered {rounds}, but the history first reaches {target:.0%} at round {actual}.")
    if actual is None:
        return f"E=1 did not reach {target:.0%} within {len(history)} rounds: less local work, more rounds."
    return f"E=1 reached {target:.0%} at round {actual}."


@exercise(
    "07.1",
    hint="`label_counts(y_train, shard_parts)` is a (clients, 10) table; count the entries above zero per row.",
    solution="""
    classes_per_client = (label_counts(y_train, shard_parts) > 0).sum(1)
    """,
)
def _check_classes_per_client(classes_per_client: Any, labels: torch.Tensor, parts: list[torch.Tensor]) -> str:
    from fedtutor.data import label_counts

    expected = (label_counts(labels, parts) > 0).sum(1)
    _expect_tensor(classes_per_client, "classes_per_client", shape=tuple(expected.shape))
    _expect(
        not torch.equal(classes_per_client, label_counts(labels, parts).sum(1)),
        "Those are numbers of examples per client; count distinct digits instead (entries > 0).",
    )
    wrong = (classes_per_client != expected).nonzero().flatten().tolist()  # client ids with a wrong count
    _expect(
        not wrong,
        f"Client {wrong[0] if wrong else 0} holds {int(expected[wrong[0]]) if wrong else 0} different digits, "
        f"you have {int(classes_per_client[wrong[0]]) if wrong else 0}; count the columns above zero.",
    )
    share = (expected <= 2).float().mean().item()
    return f"{share:.0%} of the clients hold at most two digits."


@exercise(
    "07.2",
    hint="Move the alpha slider: small alpha concentrates each client on few digits. Try values below 0.5.",
    solution="""
    alpha = 0.1
    """,
)
def _check_skewed_alpha(alpha: Any, labels: torch.Tensor) -> str:
    from fedtutor.data import dirichlet, label_counts

    _expect(isinstance(alpha, (int, float)) and alpha > 0, f"alpha must be a positive number, got {alpha!r}.")
    counts = label_counts(labels, dirichlet(labels, 20, float(alpha), seed=0)).float()  # (20, 10)
    counts = counts[counts.sum(1) > 0]  # a client with no data has no most common digit
    share = (counts.max(1).values / counts.sum(1)).mean().item()
    _expect(
        share >= 0.6,
        f"With alpha={alpha} a client's most common digit is {share:.0%} of its data on average; "
        "make alpha smaller to reach at least 60%.",
    )
    return f"alpha={alpha}: the top digit is {share:.0%} of a client's data on average (IID: about 10-20%)."


@exercise(
    "07.3",
    hint="Each of the m selected clients returns independently with probability 1 - p.",
    solution="""
    expected_returned = m * (1 - p)
    """,
)
def _check_expected_returned(expected: Any, m: int, p: float, history: Any) -> str:
    _expect(isinstance(expected, (int, float)), f"Answer with a number, got {type(expected).__name__}.")
    dropped = abs(expected - m * p) < 1e-9 and p != 0.5
    _expect(not dropped, f"{expected} is how many drop out; the question asks how many return.")
    _expect(abs(expected - m * (1 - p)) < 1e-9, f"{expected} is not it: m = {m} clients, each returns with 1 - p.")
    observed = sum(len(c) for c in history["clients"]) / len(history)
    return f"Expected {expected:.1f} per round; the run averaged {observed:.1f}."
