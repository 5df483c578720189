"""The fast path checks itself (issue 29 item 5): the first replay of every captured step is compared with an
eager step from the same inputs and state. Tested on the CPU through the same comparison path, with a stand-in
for the CUDA graph whose replay is faithful or deliberately wrong."""
import torch
import torch.nn as nn

from cmwnet.fast import FastPath, StepGraph, _Captured, step_state


def _step_parts(seed: int = 0):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(4, 5), nn.BatchNorm1d(5), nn.ReLU(), nn.Linear(5, 3))
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)

    def step(x, y):
        loss = nn.functional.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return {"loss": loss.detach()}
    return model, opt, step


class FakeGraph:
    """Replays by running the step on the static inputs (a faithful graph), then optionally corrupts it."""

    def __init__(self, fn, static_in, static_out, model, wrong: bool):
        self.fn, self.static_in, self.static_out, self.model, self.wrong = fn, static_in, static_out, model, wrong

    def replay(self):
        out = self.fn(*self.static_in)
        for k, v in out.items():
            self.static_out[k].copy_(v)
        if self.wrong:
            with torch.no_grad():
                self.model[0].weight.add_(1e-2)    # a replay that silently diverges


def _graph(wrong: bool, notes: list):
    model, opt, step = _step_parts()
    fast = FastPath(torch.device("cpu"), graphs=True, warmup=1, notify=notes.append)
    g = StepGraph(step, "ERM step", fast, state=lambda: step_state(model, opt))
    g.enabled = True   # CUDA graphs are CUDA-only; the stand-in takes the capture's place

    def capture(inputs, flags):
        static_in = [t.detach().clone() for t in inputs]
        static_out = {"loss": torch.zeros(())}
        return _Captured(FakeGraph(step, static_in, static_out, model, wrong), static_in, static_out)
    g._capture = capture
    return model, opt, step, fast, g


def _reference_after(steps: int, batches):
    model, opt, step = _step_parts()
    for x, y in batches[:steps]:
        step(x, y)
    return model


def _batches(n: int = 5):
    g = torch.Generator().manual_seed(1)
    return [(torch.randn(8, 4, generator=g), torch.randint(0, 3, (8,), generator=g)) for _ in range(n)]


def test_a_faithful_replay_passes_its_check_and_keeps_the_graph():
    notes = []
    model, opt, step, fast, g = _graph(wrong=False, notes=notes)
    batches = _batches()
    for x, y in batches:
        g(x, y)
    assert g.enabled and g.captures == 1 and g.replays >= 4 and not notes
    assert fast.checks["ERM step"].startswith("replay = eager step")
    ref = _reference_after(len(batches), batches)   # checked or not, the run did 5 steps, not 6
    for p, q in zip(model.parameters(), ref.parameters()):
        assert torch.allclose(p, q, atol=1e-6)


def test_a_wrong_replay_falls_back_to_eager_with_one_line_and_the_eager_state():
    notes = []
    model, opt, step, fast, g = _graph(wrong=True, notes=notes)
    batches = _batches()
    for x, y in batches:
        g(x, y)
    assert not g.enabled and len(notes) == 1 and "differed from the eager step" in notes[0]
    assert fast.checks["ERM step"].startswith("mismatch:") and "updated tensor" in fast.checks["ERM step"]
    ref = _reference_after(len(batches), batches)   # the wrong replay left no trace: eager state kept
    for p, q in zip(model.parameters(), ref.parameters()):
        assert torch.allclose(p, q, atol=1e-6)


def test_step_state_lists_parameters_buffers_and_optimizer_state():
    model, opt, step = _step_parts()
    x, y = _batches(1)[0]
    step(x, y)
    tensors = step_state(model, opt, torch.zeros(2), None)
    n_params = len(list(model.parameters()))
    assert len(tensors) == n_params + len(list(model.buffers())) + n_params + 1   # + momentum buffers + the tensor
