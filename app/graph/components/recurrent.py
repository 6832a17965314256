"""Recurrent layers and attention over sequences shaped (batch, time, features)."""

from __future__ import annotations

from app.graph.components.base import Component, LayerInfo, Setting, known, need_rank

RNN_KINDS = ("SimpleRNN", "GRU", "LSTM")
GATES = {"SimpleRNN": 1, "GRU": 3, "LSTM": 4}


def rnn_params(kind: str, units: int, features: int) -> int:
    gates = GATES[kind]
    # Keras' GRU defaults to reset_after=True, which keeps a second bias vector.
    biases = 2 * gates * units if kind == "GRU" else gates * units
    return gates * units * (features + units) + biases


def _rnn(kind: str):
    def infer(s, inputs):
        (shape,) = inputs
        need_rank(shape, 3, what="sequence input (batch, time, features)")
        features = known(shape[2], "feature dimension")
        if s.get("unroll"):
            known(shape[1], "number of time steps (to unroll)")
        units = s["units"]
        params = rnn_params(kind, units, features)
        out = (None, shape[1], units) if s["return_sequences"] else (None, units)
        steps = shape[1] or 1
        return LayerInfo(out, params, 0, 2 * steps * (params - units))

    return infer


def _bidirectional(s, inputs):
    (shape,) = inputs
    single = _rnn(s["layer"])(s, inputs)
    units = s["units"] * (2 if s["merge_mode"] == "concat" else 1)
    out = (*single.shape[:-1], units)
    return LayerInfo(out, 2 * single.trainable, 0, 2 * single.flops)


def _attention(s, inputs):
    query = inputs[0]
    value = inputs[1] if len(inputs) > 1 else query
    for shape in (query, value):
        need_rank(shape, 3, what="sequence input (batch, time, features)")
    q_dim = known(query[-1], "query feature dimension")
    v_dim = known(value[-1], "value feature dimension")
    heads, key_dim = s["num_heads"], s["key_dim"]
    value_dim = s["value_dim"] or key_dim
    bias = 1 if s["use_bias"] else 0
    params = (
        (q_dim + bias) * heads * key_dim  # query projection
        + (v_dim + bias) * heads * key_dim  # key projection
        + (v_dim + bias) * heads * value_dim  # value projection
        + heads * value_dim * q_dim
        + bias * q_dim  # output projection
    )
    tq, tv = query[1] or 1, value[1] or 1
    flops = 2 * (
        tq * q_dim * heads * key_dim
        + tv * v_dim * heads * (key_dim + value_dim)
        + tq * tv * heads * (key_dim + value_dim)
        + tq * heads * value_dim * q_dim
    )
    return LayerInfo(query, params, 0, flops)


def _last_step(s, inputs):
    (shape,) = inputs
    need_rank(shape, 3, what="sequence input (batch, time, features)")
    known(shape[1], "number of time steps")
    return LayerInfo((None, shape[2]))


def _rnn_settings() -> tuple[Setting, ...]:
    return (
        Setting("units", "int", 64, "Size of the hidden state.", min=1, max=100_000),
        Setting(
            "return_sequences",
            "bool",
            False,
            "Output every time step (for stacking) instead of the last one.",
        ),
        Setting(
            "unroll",
            "bool",
            False,
            "Unroll the loop over a fixed number of time steps: often faster on short "
            "sequences, and TFLite runs it without Select TF ops; uses more memory.",
        ),
    )


COMPONENTS = [
    *(
        Component(
            kind,
            "Text & Sequence",
            f"{kind} recurrent layer over the time axis.",
            _rnn_settings(),
            _rnn(kind),
            keras_class=kind,
        )
        for kind in RNN_KINDS
    ),
    Component(
        "Bidirectional",
        "Text & Sequence",
        "Runs a recurrent layer forwards and backwards and merges both.",
        (
            Setting("layer", "choice", "LSTM", "The recurrent layer to wrap.", choices=RNN_KINDS),
            *_rnn_settings(),
            Setting(
                "merge_mode",
                "choice",
                "concat",
                "How the two directions are combined.",
                choices=("concat", "sum", "mul", "ave"),
            ),
        ),
        _bidirectional,
        keras_class="Bidirectional",
    ),
    Component(
        "MultiHeadAttention",
        "Text & Sequence",
        "Attention of a query sequence over a value sequence (self-attention with one input).",
        (
            Setting("num_heads", "int", 4, "Number of attention heads.", min=1, max=1024),
            Setting("key_dim", "int", 32, "Size of each head for query and key.", min=1),
            Setting(
                "value_dim",
                "int",
                None,
                "Size of each head for value; empty for key_dim.",
                min=1,
                optional=True,
            ),
            Setting("dropout", "float", 0.0, "Dropout on the attention weights.", min=0, max=0.99),
            Setting("use_bias", "bool", True, "Add learned biases to the projections."),
        ),
        _attention,
        inputs=(1, 2),
        keras_class="MultiHeadAttention",
    ),
    Component(
        "LastStep",
        "Text & Sequence",
        "The last time step of a sequence, (batch, time, features) -> (batch, features). "
        "Subtract it from a window for the change since its last value, and add it to a "
        "predicted change to forecast a value.",
        (),
        _last_step,
        extra_layers=("_crop",),  # templates/components/LastStep.py.j2
    ),
]
