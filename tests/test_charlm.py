"""Character-level LM task, char transformer and Adam reference: real corpora, real forwards, tiny sizes."""

from __future__ import annotations

import functools
import http.server
import math
import threading

import gymnasium as gym
import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from evoboard import envs
from evoboard.agents import PopulationActor, encodings, make_policy
from evoboard.agents.algorithms.adam import Adam, AdamOptions
from evoboard.agents.algorithms.base import DirectTrainer
from evoboard.agents.transformer import CharTransformer, CharTransformerOptions
from evoboard.envs.charlm import CharLMOptions, CharLMTask, cross_entropy
from evoboard.envs.corpora import UNKNOWN, Vocabulary, load_text, pydoc_text, split
from evoboard.errors import UsageError
from evoboard.suite.runner import run_spec
from evoboard.suite.spec import RunSpec, resolve

TINY = {"context": 16, "batch_windows": 4, "val_windows": 8}
TINY_MODEL = CharTransformerOptions(n_layer=2, n_embd=16, n_head=2)


def tiny_task(**kw) -> CharLMTask:
    return envs.make("charlm/pydoc", CharLMOptions(**{**TINY, **kw}))


def tiny_model(task: CharLMTask, members: int, seed: int = 0):
    """A tiny transformer for ``task`` and ``members`` distinct dense members."""
    policy = make_policy("char_transformer", task.observation_space, task.action_space, TINY_MODEL)
    params = encodings.make("dense", policy).decode([(seed * 100 + i,) for i in range(members)])
    return policy, params


# -- corpora, split, vocabulary -------------------------------------------------------------------------------
def test_split_is_deterministic_contiguous_and_disjoint():
    text = pydoc_text()
    assert len(text) > 400_000 and text == pydoc_text()
    a, b = split(text, 0.1, 65), split(text, 0.1, 65)
    assert np.array_equal(a.train, b.train) and np.array_equal(a.val, b.val) and a.vocab == b.vocab
    cut = len(a.train)
    assert cut + len(a.val) == len(text) and cut == round(0.9 * len(text))
    # The two parts tile the text: train is its start, val its end, no character in both.
    assert a.vocab.decode(a.train) == text[:cut]
    assert np.array_equal(a.val, a.vocab.encode(text[cut:]))


def test_vocabulary_from_training_text_with_unknown_id():
    vocab = Vocabulary.from_text("banana!")
    assert vocab.chars == "!abn" and len(vocab) == 5
    assert vocab.encode("nab?").tolist() == [4, 2, 3, UNKNOWN]
    assert vocab.decode(np.array([3, 0])) == "b\ufffd"
    parts = split("aaaabbbb" * 4 + "zzzz", 0.25, 3)  # 'z' only in the validation part
    assert len(parts.vocab) == 3 and (parts.val == UNKNOWN).sum() == 4


def test_too_short_corpus_and_bad_options_are_one_line_errors(tmp_path):
    short = tmp_path / "short.txt"
    short.write_text("tiny text", encoding="utf-8")
    with pytest.raises(ValueError, match="too short"):
        envs.make("charlm/file", CharLMOptions(corpus="file", corpus_path=str(short)))
    latin = tmp_path / "latin1.txt"
    latin.write_bytes("caf\xe9 ".encode("latin-1") * 100)
    with pytest.raises(ValueError, match="not UTF-8"):
        load_text("file", str(latin))
    with pytest.raises(ValueError, match="needs a text file"):
        load_text("file")
    with pytest.raises(UsageError, match="n_head"):
        resolve(RunSpec("charlm/pydoc", settings={"n_embd": "30", "n_head": "4"}))
    with pytest.raises(UsageError, match="corpus_path does not apply"):
        resolve(RunSpec("charlm/pydoc", settings={"corpus_path": "x.txt"}))


def test_local_file_corpus(tmp_path):
    path = tmp_path / "poem.txt"
    path.write_text("the quick brown fox jumps over the lazy dog\n" * 50, encoding="utf-8")
    task = envs.make("charlm/file", CharLMOptions(corpus="file", corpus_path=str(path), **TINY))
    assert task.vocab.chars == "".join(sorted(set("the quick brown fox jumps over the lazy dog\n")))
    assert task.action_space.n == len(task.vocab) and task.observation_space.shape == (16,)


def test_shakespeare_downloads_once_over_loopback_http_into_the_cache(tmp_path):
    served = tmp_path / "served"
    served.mkdir()
    (served / "input.txt").write_text("First Citizen:\nBefore we proceed any further, hear me speak.\n" * 40)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/input.txt"
        text = load_text("shakespeare", url=url, cache=str(tmp_path / "cache"))
    finally:
        server.shutdown()
        server.server_close()
    assert text.startswith("First Citizen:") and (tmp_path / "cache" / "tinyshakespeare.txt").read_text() == text
    # The server is gone: a second load reads the cache alone.
    assert load_text("shakespeare", url=url, cache=str(tmp_path / "cache")) == text


def test_offline_shakespeare_is_one_clear_usage_error(tmp_path):
    cache = tmp_path / "cache"
    settings = {"corpus_url": "http://127.0.0.1:9/input.txt", "corpus_cache": str(cache)}  # port 9: refused
    with pytest.raises(UsageError) as err:
        run_spec(RunSpec("charlm/shakespeare", population=2, generations=1, settings=settings), tmp_path / "out")
    message = str(err.value)
    assert "\n" not in message and "cannot download http://127.0.0.1:9/input.txt" in message
    assert str(cache / "tinyshakespeare.txt") in message and "--set corpus_path=PATH" in message
    assert not (tmp_path / "out").exists() and not cache.exists()


# -- the transformer -------------------------------------------------------------------------------------------
def reference_logits(policy: CharTransformer, params, m: int, tokens: torch.Tensor) -> torch.Tensor:
    """Member ``m`` alone with plain torch ops (explicit masked softmax attention): tokens (B, T) -> (B, T, V)."""

    def w(name: str, role: str = "weight") -> torch.Tensor:
        return getattr(params[name], role)[m]

    def ln(x, name):
        return F.layer_norm(x, x.shape[-1:], w(name), w(name, "bias"))

    def lin(x, name):
        return x @ w(name).T + w(name, "bias")

    b, t = tokens.shape
    c, h = policy.options.n_embd, policy.options.n_head
    x = w("wte")[tokens] + w("wpe")[:t]  # (B, T, C)
    future = torch.triu(torch.ones(t, t, dtype=torch.bool), diagonal=1)
    for i in range(policy.options.n_layer):
        q, k, v = lin(ln(x, f"h{i}.ln1"), f"h{i}.attn").split(c, dim=-1)
        q, k, v = (z.reshape(b, t, h, c // h).transpose(1, 2) for z in (q, k, v))  # (B, H, T, D)
        scores = (q @ k.transpose(-1, -2) / math.sqrt(c // h)).masked_fill(future, float("-inf"))
        y = (scores.softmax(-1) @ v).transpose(1, 2).reshape(b, t, c)
        x = x + lin(y, f"h{i}.attn_proj")
        x = x + lin(F.gelu(lin(ln(x, f"h{i}.ln2"), f"h{i}.mlp")), f"h{i}.mlp_proj")
    return lin(ln(x, "ln_f"), "head")


def test_batched_forward_equals_per_member_reference():
    task = tiny_task()
    policy, params = tiny_model(task, 3)
    tokens = torch.stack([task.windows(s)[0] for s in range(3)])  # (P, B, T): different windows per member
    batched = policy.act(params, tokens)
    assert batched.shape == (3, 4, 16, len(task.vocab))
    for m in range(3):
        torch.testing.assert_close(batched[m], reference_logits(policy, params, m, tokens[m]), atol=1e-5, rtol=1e-5)
    # Members differ, so a broken member index would show.
    assert not torch.allclose(batched[0], batched[1], atol=1e-3)
    # One window per member (P, T) gives (P, T, V), the same numbers.
    torch.testing.assert_close(policy.act(params, tokens[:, 0]), batched[:, 0])


def test_causal_masking():
    task = tiny_task()
    policy, params = tiny_model(task, 2)
    tokens = task.windows(1)[0].expand(2, -1, -1).clone()  # (P, B, T)
    changed = tokens.clone()
    changed[:, :, 9] = (changed[:, :, 9] + 1) % len(task.vocab)
    before, after = policy.act(params, tokens), policy.act(params, changed)
    assert torch.equal(before[:, :, :9], after[:, :, :9])
    assert (before[:, :, 9:] - after[:, :, 9:]).abs().amax(dim=(0, 1, 3)).min() > 1e-6


def test_default_parameter_count():
    task = envs.make("charlm/pydoc")
    policy = make_policy("char_transformer", task.observation_space, task.action_space)
    v, t, c = len(task.vocab), 64, 64
    assert v == 104 and policy.describe() == "char_transformer(L2,C64,H4,T64)"
    assert policy.parameter_count == v * c + t * c + 2 * (12 * c * c + 13 * c) + 2 * c + c * v + v == 117_608


# -- fitness and scores ----------------------------------------------------------------------------------------
def test_cross_entropy_by_hand():
    logits = torch.tensor([[[[math.log(3.0), 0.0]]], [[[0.0, 0.0]]]])  # (P=2, B=1, T=1, V=2)
    ce = cross_entropy(logits, torch.tensor([[0]]))
    torch.testing.assert_close(ce, torch.tensor([math.log(4 / 3), math.log(2.0)]))


def test_uniform_model_scores_log2_vocab_bits():
    task = tiny_task(episodes=2)
    policy, params = tiny_model(task, 3)
    params["head"].weight.zero_()
    params["head"].bias.zero_()  # every logit 0: the uniform distribution
    actor = PopulationActor(policy, params, torch.device("cpu"))
    ev = task.evaluate(actor, 3, [5, 6])
    v = len(task.vocab)
    np.testing.assert_allclose(ev.fitness, -math.log(v), rtol=1e-6)
    assert ev.returns.shape == (3, 2) and ev.frames == 3 * 2 * 4 * 16 and ev.member_forwards == 3 * 2 * 4
    score, final = task.final_score(PopulationActor(policy, params.select(torch.tensor([1])), torch.device("cpu")), [])
    assert score == pytest.approx(math.log2(v), rel=1e-6) and final.frames == 8 * 16 and final.member_forwards == 8


def test_same_windows_for_every_member_new_ones_each_generation_and_determinism():
    task = tiny_task()
    policy, params = tiny_model(task, 4)
    seen = []
    actor = PopulationActor(policy, params, torch.device("cpu"))

    def recording(members, obs):
        seen.append(obs)
        return actor(members, obs)

    first = task.evaluate(recording, 4, [11])
    assert len(seen) == 1 and seen[0].shape == (4, 4, 16) and seen[0].stride(0) == 0  # one copy, expanded
    assert all(torch.equal(seen[0][m], task.windows(11)[0]) for m in range(4))
    assert not torch.equal(task.windows(11)[0], task.windows(12)[0])
    inputs, targets = task.windows(11)
    assert torch.equal(inputs[:, 1:], targets[:, :-1])  # targets are the next characters
    again = task.evaluate(actor, 4, [11])
    np.testing.assert_array_equal(first.fitness, again.fitness)
    assert not np.array_equal(first.fitness, task.evaluate(actor, 4, [12]).fitness)
    chunked = envs.make("charlm/pydoc", CharLMOptions(**TINY, members_per_forward=3)).evaluate(actor, 4, [11])
    np.testing.assert_allclose(chunked.fitness, first.fitness, rtol=1e-6)
    # Fitness is minus the mean cross-entropy of each member's logits on those windows.
    np.testing.assert_allclose(-first.fitness, cross_entropy(policy.act(params, seen[0]), targets), rtol=1e-6)


# -- end to end and the gradient reference -----------------------------------------------------------------------
def test_run_spec_writes_a_bits_per_char_row(tmp_path):
    settings = {**TINY, "n_layer": 1, "n_embd": 16, "n_head": 2, "elite_candidates": 2, "elite_episodes": 1}
    row = run_spec(RunSpec("charlm/pydoc", population=4, generations=2, seed=3, settings=settings), tmp_path)
    board = pd.read_csv(tmp_path / "leaderboard.csv")
    assert len(board) == 1 and board.loc[0, "score_kind"] == "bits_per_char" and row["score_kind"] == "bits_per_char"
    assert 0 < board.loc[0, "final_score"] < 12 and board.loc[0, "policy"] == "char_transformer(L1,C16,H2,T16)"
    per_generation = (4 + 2) * 4 * 16  # population and elite candidates, batch_windows x context characters each
    parents = (2 - 1) * 4 * 16  # generation 1: the non-elite parent beside its children (mutation effects)
    assert board.loc[0, "frames"] == 2 * per_generation + parents + 8 * 16
    assert board.loc[0, "member_forwards"] == board.loc[0, "frames"] // 16


def test_adam_reference_lowers_the_loss():
    task = tiny_task(batch_windows=8)
    policy, _ = tiny_model(task, 1)
    encoding = encodings.make("dense", policy)
    trainer = Adam(4, AdamOptions(adam_lr=1e-2)).trainer(encoding, policy, seed=0)
    first = trainer.step(task.loss, 0)
    for step in range(1, 40):
        last = trainer.step(task.loss, step)
    assert first.member_forwards == 8 and first.frames == 8 * 16
    assert -last.fitness[0] < -first.fitness[0] - 0.5  # nats per character, on fresh windows
    score, _ = task.final_score(PopulationActor(policy, trainer.params(), torch.device("cpu")), [])
    assert score < -first.fitness[0] / math.log(2)
    assert isinstance(Adam(4, AdamOptions()), DirectTrainer) and not hasattr(Adam(4, AdamOptions()), "ask")


def test_transformer_rejects_other_spaces():
    box = gym.spaces.Box(-1.0, 1.0, (4,))
    with pytest.raises(ValueError, match="char_transformer policy needs windows of token ids"):
        make_policy("char_transformer", box, gym.spaces.Discrete(2))
    with pytest.raises(ValueError, match="char_transformer"):
        make_policy("char_transformer", gym.spaces.MultiDiscrete([5] * 8), gym.spaces.Discrete(6))
