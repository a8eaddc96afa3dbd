"""The TensorFlow track: Keras weights of the notebook's model become a Lab 1 artifact that predicts the same."""

import json

import h5py
import numpy as np
import pytest
import torch
from safetensors.numpy import load_file

from grader.cli import main
from grader.errors import EXIT_OK, EXIT_REJECTED
from grader.labs import music

VOCAB = len(music.COURSE_VOCAB)
E, H = 8, 12


@pytest.fixture
def keras_weights():
    """Random weights with the shapes Keras gives Embedding(VOCAB, E) -> LSTM(H) -> Dense(VOCAB)."""
    rng = np.random.default_rng(7)
    return [
        rng.normal(0, 0.5, (VOCAB, E)).astype(np.float32),  # embeddings
        rng.normal(0, 0.5, (E, 4 * H)).astype(np.float32),  # kernel
        rng.normal(0, 0.5, (H, 4 * H)).astype(np.float32),  # recurrent_kernel
        rng.normal(0, 0.5, (4 * H,)).astype(np.float32),  # bias
        rng.normal(0, 0.5, (H, VOCAB)).astype(np.float32),  # dense kernel
        rng.normal(0, 0.5, (VOCAB,)).astype(np.float32),  # dense bias
    ]


def write_keras3_h5(path, weights, *, stateful=True):
    """The layout of Keras 3 ``model.save_weights``: ``layers/<layer>/vars/<i>``, the LSTM's on its cell."""
    embeddings, kernel, recurrent, bias, dense_kernel, dense_bias = weights
    with h5py.File(path, "w") as f:
        f.create_group("vars")
        f.create_group("layers/embedding/vars")["0"] = embeddings
        lstm_vars = f.create_group("layers/lstm/vars")
        if stateful:  # a stateful LSTM keeps its running h and c as variables of the layer, not of the cell
            lstm_vars["0"] = np.ones((1, H), dtype=np.float32)
            lstm_vars["1"] = np.ones((1, H), dtype=np.float32)
        cell = f.create_group("layers/lstm/cell/vars")
        cell["0"], cell["1"], cell["2"] = kernel, recurrent, bias
        dense = f.create_group("layers/dense/vars")
        dense["0"], dense["1"] = dense_kernel, dense_bias
        f.create_group("optimizer/vars")["0"] = np.zeros((VOCAB, E), dtype=np.float32)
    return path


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def keras_logits(weights, ids):
    """The notebook's Keras model run by hand: Keras' LSTM step with gates (i, f, c, o) in the kernel columns."""
    embeddings, kernel, recurrent, bias, dense_kernel, dense_bias = (w.astype(np.float64) for w in weights)
    h = np.zeros(H)
    c = np.zeros(H)
    out = []
    for token in ids:
        z = embeddings[token] @ kernel + h @ recurrent + bias
        i, f, g, o = sigmoid(z[:H]), sigmoid(z[H : 2 * H]), np.tanh(z[2 * H : 3 * H]), sigmoid(z[3 * H :])
        c = f * c + i * g
        h = o * np.tanh(c)
        out.append(h @ dense_kernel + dense_bias)
    return np.stack(out)


def torch_logits(artifact, ids):
    config = json.loads((artifact / "config.json").read_text())
    model = music.build_model(VOCAB, config["embedding_dim"], config["hidden_size"], config["num_layers"])
    state = {k: torch.from_numpy(v) for k, v in load_file(str(artifact / "model.safetensors")).items()}
    model.load_state_dict(state, strict=True)
    model.eval()
    with torch.no_grad():
        logits, _ = model(torch.tensor([ids]))
    return logits[0].double().numpy()


IDS = [music.COURSE_VOCAB.index(ch) for ch in "X:1\nT:Tune\nK:D\n|:D2FA dAFA|"]


def convert(source, out, *extra):
    return main(["convert-keras", "--lab", "music", str(source), str(out), *extra])


def test_keras_h5_weights_convert_to_a_model_with_the_same_logits(keras_weights, tmp_path, capsys):
    source = write_keras3_h5(tmp_path / "music.weights.h5", keras_weights)
    out = tmp_path / "artifact"
    assert convert(source, out, "--embedding-dim", str(E), "--hidden-size", str(H)) == EXIT_OK
    summary = json.loads(capsys.readouterr().out)
    assert (summary["embedding_dim"], summary["hidden_size"], summary["num_layers"]) == (E, H, 1)
    np.testing.assert_allclose(torch_logits(out, IDS), keras_logits(keras_weights, IDS), atol=1e-5, rtol=0)
    tensors = load_file(str(out / "model.safetensors"))
    assert not tensors["lstm.bias_hh_l0"].any()
    assert json.loads((out / "config.json").read_text())["vocab"] == music.COURSE_VOCAB


def test_converted_artifact_passes_the_graders_own_check(keras_weights, tmp_path, capsys):
    out = tmp_path / "artifact"
    assert convert(write_keras3_h5(tmp_path / "m.weights.h5", keras_weights), out) == EXIT_OK
    capsys.readouterr()
    assert main(["check", "--lab", "music", str(out), "--deep"]) == EXIT_OK
    assert json.loads(capsys.readouterr().out)["parameters"] == music.parameter_count(VOCAB, E, H, 1)


def test_npz_of_get_weights_gives_the_same_artifact_as_the_h5_file(keras_weights, tmp_path):
    np.savez(tmp_path / "weights.npz", *keras_weights)
    assert convert(tmp_path / "weights.npz", tmp_path / "from-npz") == EXIT_OK
    assert convert(write_keras3_h5(tmp_path / "m.weights.h5", keras_weights, stateful=False), tmp_path / "from-h5") == 0
    from_npz = load_file(str(tmp_path / "from-npz" / "model.safetensors"))
    from_h5 = load_file(str(tmp_path / "from-h5" / "model.safetensors"))
    assert sorted(from_npz) == sorted(from_h5) == sorted(music.expected_tensors(VOCAB, E, H, 1))
    for name in from_h5:
        np.testing.assert_array_equal(from_npz[name], from_h5[name])


def test_legacy_keras2_h5_names_are_understood(keras_weights, tmp_path):
    embeddings, kernel, recurrent, bias, dense_kernel, dense_bias = keras_weights
    with h5py.File(tmp_path / "legacy.h5", "w") as f:
        f["embedding/embedding/embeddings:0"] = embeddings
        f["lstm/lstm/lstm_cell/kernel:0"] = kernel
        f["lstm/lstm/lstm_cell/recurrent_kernel:0"] = recurrent
        f["lstm/lstm/lstm_cell/bias:0"] = bias
        f["dense/dense/kernel:0"] = dense_kernel
        f["dense/dense/bias:0"] = dense_bias
    out = tmp_path / "artifact"
    assert convert(tmp_path / "legacy.h5", out) == EXIT_OK
    np.testing.assert_allclose(torch_logits(out, IDS), keras_logits(keras_weights, IDS), atol=1e-5, rtol=0)


def test_a_wrong_hidden_size_flag_is_refused_and_names_the_real_one(keras_weights, tmp_path, capsys):
    source = write_keras3_h5(tmp_path / "m.weights.h5", keras_weights)
    assert convert(source, tmp_path / "out", "--hidden-size", "1024") == EXIT_REJECTED
    assert capsys.readouterr().out.strip() == (
        f"cannot convert (wrong_shape): --hidden-size is 1024 but the weights have H = {H}."
    )
    assert not (tmp_path / "out").exists()


def test_a_model_on_another_vocabulary_is_refused(keras_weights, tmp_path, capsys):
    keras_weights[0] = keras_weights[0][:-3]
    np.savez(tmp_path / "weights.npz", *keras_weights)
    assert convert(tmp_path / "weights.npz", tmp_path / "out") == EXIT_REJECTED
    assert capsys.readouterr().out.startswith(
        f"cannot convert (wrong_vocab): The embedding has {VOCAB - 3} rows but the course vocabulary has {VOCAB}"
    )


def test_an_npz_holding_pickled_objects_is_refused_without_unpickling(tmp_path, capsys):
    np.savez(tmp_path / "weights.npz", *[np.array([{"a": 1}], dtype=object)] * 6)
    assert convert(tmp_path / "weights.npz", tmp_path / "out") == EXIT_REJECTED
    assert capsys.readouterr().out.startswith("cannot convert (bad_weights): weights.npz holds an array that is not")
