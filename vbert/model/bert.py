"""BERT, top to bottom: its config, the encoder, Google's pretraining heads and losses, and the classifier.

The encoder is keras-hub's `BertBackbone` (Keras 3 on TensorFlow); everything on top of it is written here:

    BertConfig        Google's bert_config.json / HF's config.json fields; loads what it saves
    build_backbone    the encoder: embeddings, `num_hidden_layers` transformer layers, pooler
    PretrainingHeads  masked LM (transform, LayerNorm, output bias, weights tied to the word embeddings) and
                      next sentence (pooled output -> 2), as google-research/bert's run_pretraining.py
    BertPretrainer    encoder + heads, trained on the sum of Google's two losses, with Google's eval metrics
    build_classifier  encoder + dropout + dense on the pooled output, as run_classifier.py

Weights are loaded and saved by Google's checkpoint names in `vbert.model.weights`, which also holds the few places
that reach into keras-hub's layers.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from vbert.core.errors import InputError
from vbert.core.resources import PACKAGED_MODELS, packaged_model_dir
from vbert.text.encoding import INPUT_NAMES

# ---- config ------------------------------------------------------------------------------------------------

_SIZE_FIELDS = (
    "vocab_size",
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "intermediate_size",
    "max_position_embeddings",
    "type_vocab_size",
)
_TANH_GELUS = ("gelu_new", "gelu_fast", "gelu_pytorch_tanh")  # Hugging Face's names for the tanh approximation


@dataclass(frozen=True)
class BertConfig:
    """Google's bert_config.json fields (HF's config.json uses the same names)."""

    vocab_size: int
    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    intermediate_size: int
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    initializer_range: float = 0.02
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1
    gelu_approximate: bool = True  # Google's "gelu" is the tanh approximation; Hugging Face's "gelu" is exact

    @classmethod
    def from_json(cls, path: str | os.PathLike) -> BertConfig:
        """Read a Google `bert_config.json` or an HF `config.json` (told apart by HF's `model_type`)."""
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError as err:
            raise InputError(f"{path}: no such model config") from err
        except json.JSONDecodeError as err:
            raise InputError(f"{path}:{err.lineno}: not valid JSON: {err.msg}") from err
        return cls.from_dict(data, str(path))

    @classmethod
    def from_dict(cls, data: dict, source: str = "<config>") -> BertConfig:
        missing = [f for f in _SIZE_FIELDS if f not in data]
        if missing:
            raise InputError(f"{source}: missing field(s) {', '.join(missing)}")
        for name in _SIZE_FIELDS:
            if isinstance(data[name], bool) or not isinstance(data[name], int) or data[name] <= 0:
                raise InputError(f"{source}: field {name} = {data[name]!r} must be a positive integer")
        if data["hidden_size"] % data["num_attention_heads"]:
            raise InputError(
                f"{source}: hidden_size {data['hidden_size']} is not a multiple of "
                f"num_attention_heads {data['num_attention_heads']}"
            )
        activation = data.get("hidden_act", "gelu")
        if activation not in ("gelu", *_TANH_GELUS):
            raise InputError(f"{source}: hidden_act {activation!r} is not supported (gelu variants only)")
        hugging_face = "model_type" in data
        known = {f.name for f in fields(cls)} - {"gelu_approximate"}
        return cls(
            **{k: v for k, v in data.items() if k in known},
            gelu_approximate=activation in _TANH_GELUS or not hugging_face,
        )

    def to_dict(self) -> dict:
        """HF's config.json (model_type bert): `hidden_act` says which GELU, so from_dict(to_dict()) is the identity."""
        data = {k: v for k, v in asdict(self).items() if k != "gelu_approximate"}
        return {"model_type": "bert", **data, "hidden_act": "gelu_new" if self.gelu_approximate else "gelu"}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2) + "\n"


MODEL_SIZES = {  # the paper's sizes besides the packaged MiniLM
    "tiny": {"hidden_size": 128, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 512},
    "base": {"hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12, "intermediate_size": 3072},
    "large": {"hidden_size": 1024, "num_hidden_layers": 24, "num_attention_heads": 16, "intermediate_size": 4096},
}
GOOGLE_CHECKPOINTS = {  # the Google checkpoints of these sizes the paper started from (downloaded by hand)
    "base": "uncased_L-12_H-768_A-12",
    "large": "wwm_uncased_L-24_H-1024_A-16",
}
MODEL_NAMES = (*PACKAGED_MODELS, *MODEL_SIZES)


def named_config(model: str, vocab_size: int) -> BertConfig:
    """The config of a model by name: a packaged model (`minilm`), or a size (`tiny`, `base`) over `vocab_size`.
    A vocabulary larger than a packaged model's (the `extend` variant) grows its embedding rows to fit."""
    if model in PACKAGED_MODELS:
        config = BertConfig.from_json(packaged_model_dir(model) / "config.json")
    elif model in MODEL_SIZES:
        config = BertConfig(vocab_size=vocab_size, **MODEL_SIZES[model])
    else:
        raise InputError(f"unknown model {model!r}: choose {', '.join(MODEL_NAMES)}")
    if config.vocab_size < vocab_size:
        config = replace(config, vocab_size=vocab_size)
    if config.vocab_size != vocab_size:
        raise InputError(f"model {model!r} has vocab_size {config.vocab_size}, the vocabulary has {vocab_size}")
    return config


# ---- the encoder -------------------------------------------------------------------------------------------


def build_backbone(config: BertConfig):
    """keras-hub's BertBackbone for `config`, with the GELU the checkpoint was trained with."""
    import keras_hub  # imported here: it loads slowly, and only the encoder needs it

    from vbert.model.weights import use_exact_gelu

    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=config.vocab_size,
        num_layers=config.num_hidden_layers,
        num_heads=config.num_attention_heads,
        hidden_dim=config.hidden_size,
        intermediate_dim=config.intermediate_size,
        dropout=config.hidden_dropout_prob,
        max_sequence_length=config.max_position_embeddings,
        num_segments=config.type_vocab_size,
    )
    if not config.gelu_approximate:
        use_exact_gelu(backbone, config.num_hidden_layers)
    return backbone


def encode(backbone, features: dict, training: bool = False) -> dict:
    """The encoder on Google's feature names: `sequence_output` [batch, seq, hidden], `pooled_output`."""
    return backbone(
        {
            "token_ids": features["input_ids"],
            "segment_ids": features["segment_ids"],
            "padding_mask": features["input_mask"],
        },
        training=training,
    )


# ---- pretraining: heads, losses, metrics -------------------------------------------------------------------


class PretrainingHeads(keras.layers.Layer):
    """Google's heads: MLM (transform, GELU, LayerNorm, output bias; the output weights are the word embeddings) and
    NSP (pooled output -> 2 logits)."""

    def __init__(self, config: BertConfig, token_embedding, **kwargs):
        super().__init__(**kwargs)
        self.config = config
        initializer = keras.initializers.TruncatedNormal(stddev=config.initializer_range)
        self.transform = keras.layers.Dense(config.hidden_size, kernel_initializer=initializer, name="transform_dense")
        self.transform_norm = keras.layers.LayerNormalization(epsilon=1e-12, name="transform_layer_norm")
        self.next_sentence = keras.layers.Dense(2, kernel_initializer=initializer, name="next_sentence")
        self.embeddings = token_embedding

    def build(self, input_shape=None):
        hidden = self.config.hidden_size
        self.transform.build((None, hidden))
        self.transform_norm.build((None, hidden))
        self.next_sentence.build((None, hidden))
        self.output_bias = self.add_weight(shape=(self.config.vocab_size,), initializer="zeros", name="output_bias")
        self.built = True

    def call(self, sequence_output, pooled_output, masked_positions):
        gathered = keras.ops.take_along_axis(sequence_output, masked_positions[:, :, None], axis=1)
        x = self.transform(gathered)
        x = keras.activations.gelu(x, approximate=self.config.gelu_approximate)
        x = self.transform_norm(x)
        logits = keras.ops.matmul(x, keras.ops.transpose(self.embeddings.embeddings)) + self.output_bias
        return logits, self.next_sentence(pooled_output)


def build_pretraining_heads(config: BertConfig, backbone) -> PretrainingHeads:
    heads = PretrainingHeads(config, backbone.get_layer("token_embedding"), name="pretraining_heads")
    heads.build()
    return heads


def masked_lm_loss(features: dict, mlm_logits):
    """The mean cross-entropy of the masked positions' predictions (padding slots weigh 0), in float32."""
    weights = features["masked_lm_weights"]
    per_position = keras.losses.sparse_categorical_crossentropy(
        features["masked_lm_ids"], keras.ops.cast(mlm_logits, "float32"), from_logits=True
    )
    return keras.ops.sum(per_position * weights) / (keras.ops.sum(weights) + 1e-5)


PRETRAINING_METRICS = ("loss", "masked_lm_loss", "masked_lm_accuracy", "next_sentence_loss", "next_sentence_accuracy")


class BertPretrainer(keras.Model):
    """Backbone + heads; trains on the sum of the masked-LM and next-sentence losses, as Google's (`next_sentence`
    False drops the second, RoBERTa's finding). Losses are computed in float32 whatever the compute dtype.

    `freeze_encoder(rows)` makes training update only the heads and the given rows of the word embeddings (the
    head warm-up); `unfreeze()` undoes it. Compile after either."""

    def __init__(self, config: BertConfig, next_sentence: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.bert_config = config
        self.next_sentence = next_sentence
        self.backbone = build_backbone(config)
        self.pretraining_heads = build_pretraining_heads(config, self.backbone)
        self.tracked = {name: keras.metrics.Mean(name=name) for name in PRETRAINING_METRICS}
        self._untracked(updated_variables=None, embedding_row_mask=None)  # None: every trainable variable

    def _untracked(self, **values) -> None:
        """Set attributes that only refer to state the model already has (Keras would track them as new state)."""
        for name, value in values.items():
            object.__setattr__(self, name, value)

    @property
    def word_embeddings(self):
        return self.backbone.get_layer("token_embedding").embeddings

    def freeze_encoder(self, rows) -> None:
        """Train only the heads, and of the word embeddings only `rows` (ids; none: the embeddings stay fixed)."""
        updated = [v for v in self.pretraining_heads.trainable_variables if v is not self.word_embeddings]
        mask = None
        if len(rows):
            mask = np.zeros((self.bert_config.vocab_size, 1), np.float32)
            mask[np.asarray(rows)] = 1.0
            mask = keras.ops.convert_to_tensor(mask)
            updated.append(self.word_embeddings)
        self._untracked(updated_variables=updated, embedding_row_mask=mask)

    def unfreeze(self) -> None:
        self._untracked(updated_variables=None, embedding_row_mask=None)

    @property
    def metrics(self):
        return list(self.tracked.values())

    def call(self, features, training=False):
        outputs = encode(self.backbone, features, training)
        return self.pretraining_heads(
            outputs["sequence_output"], outputs["pooled_output"], features["masked_lm_positions"]
        )

    def _pretraining_losses(self, features, training):
        mlm_logits, nsp_logits = self(features, training=training)
        mlm_logits, nsp_logits = keras.ops.cast(mlm_logits, "float32"), keras.ops.cast(nsp_logits, "float32")
        weights = features["masked_lm_weights"]
        mlm_loss = masked_lm_loss(features, mlm_logits)
        nsp_labels = features["next_sentence_labels"][:, 0]
        nsp_loss = keras.ops.mean(
            keras.losses.sparse_categorical_crossentropy(nsp_labels, nsp_logits, from_logits=True)
        )
        mlm_hits = keras.ops.cast(keras.ops.argmax(mlm_logits, -1) == features["masked_lm_ids"], "float32")
        nsp_hits = keras.ops.cast(keras.ops.argmax(nsp_logits, -1) == nsp_labels, "float32")
        loss = mlm_loss + nsp_loss if self.next_sentence else mlm_loss
        return loss, {
            "masked_lm_loss": (mlm_loss, None),
            "masked_lm_accuracy": (
                keras.ops.sum(mlm_hits * weights) / (keras.ops.sum(weights) + 1e-5),
                keras.ops.sum(weights),
            ),
            "next_sentence_loss": (nsp_loss, None),
            "next_sentence_accuracy": (keras.ops.mean(nsp_hits), None),
        }

    def _update_metrics(self, loss, parts):
        self.tracked["loss"].update_state(loss)
        for name, (value, weight) in parts.items():
            self.tracked[name].update_state(value, sample_weight=weight)
        results = {name: metric.result() for name, metric in self.tracked.items()}
        if isinstance(tf.distribute.get_strategy(), tf.distribute.MultiWorkerMirroredStrategy):
            # Keras 3.15 reduces step outputs across workers along axis 0, which a scalar lacks
            results = {name: keras.ops.reshape(value, (1,)) for name, value in results.items()}
        return results

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        # Keras 3.15 builds the model from a first batch it reduces across replicas, which fails under
        # MultiWorkerMirroredStrategy for a dict of features; the stage builds the model before training.
        built = all(layer.built for layer in self._flatten_layers())
        if built and self.optimizer is not None and self.optimizer.built:
            return
        super()._maybe_symbolic_build(iterator=iterator, data_batch=data_batch)

    def train_step(self, features):
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        variables = self.updated_variables if self.updated_variables is not None else self.trainable_variables
        with tf.GradientTape() as tape:
            loss, parts = self._pretraining_losses(features, training=True)
            # Under tf.distribute the optimizer sums the replicas' gradients: scale so that the sum is the
            # mean over replicas, as Google's CrossShardOptimizer does on TPU.
            scaled = loss / replicas if replicas > 1 else loss
        gradients = tape.gradient(scaled, variables)
        if self.embedding_row_mask is not None:
            gradients = [
                tf.convert_to_tensor(g) * self.embedding_row_mask if v is self.word_embeddings else g
                for g, v in zip(gradients, variables, strict=True)
            ]
        self.optimizer.apply_gradients(zip(gradients, variables, strict=True))
        return self._update_metrics(loss, parts)

    def test_step(self, features):
        loss, parts = self._pretraining_losses(features, training=False)
        return self._update_metrics(loss, parts)


def build_pretrainer(config: BertConfig):
    """A BertPretrainer with every variable created (so weights and checkpoints can be assigned to it)."""
    pretrainer = BertPretrainer(config)
    dummy = {k: np.zeros((1, 8), np.int32) for k in ("input_ids", "segment_ids")}
    dummy.update(input_mask=np.ones((1, 8), np.int32), masked_lm_positions=np.zeros((1, 1), np.int32))
    pretrainer(dummy)
    return pretrainer


# ---- fine-tuning: the classifier ---------------------------------------------------------------------------


def build_classifier(config: BertConfig, num_labels: int, backbone=None):
    """The encoder (a fresh one, or `backbone` with its weights) + dropout + dense layer on the pooled output."""
    backbone = backbone if backbone is not None else build_backbone(config)
    inputs = {name: keras.Input(shape=(None,), dtype="int32", name=name) for name in INPUT_NAMES}
    pooled = encode(backbone, inputs)["pooled_output"]
    pooled = keras.layers.Dropout(config.hidden_dropout_prob)(pooled)
    initializer = keras.initializers.TruncatedNormal(stddev=config.initializer_range)
    # float32 logits whatever the compute dtype: the loss and the served probabilities need the precision
    logits = keras.layers.Dense(num_labels, kernel_initializer=initializer, dtype="float32", name="classifier")(pooled)
    return keras.Model(inputs, logits, name="bert_classifier")


MASKED_PREFIX = "masked_"  # EndTaskAware's batches: the masked copy's features, e.g. masked_input_ids


class EndTaskAware(keras.Model):
    """Fine-tuning with the masked-LM loss of the task's own texts added (end-task-aware training, Dery et al. 2022,
    with a fixed weight): each update minimises the task loss on a batch + `weight` x the masked-LM loss of the same
    texts masked (features named `MASKED_PREFIX` + the pretrainer's). `classifier` and `pretrainer` share their
    encoder; the classifier is what is kept and served, the MLM head only helps training."""

    def __init__(self, classifier, pretrainer: BertPretrainer, task_loss, weight: float, **kwargs):
        super().__init__(**kwargs)
        self.classifier, self.pretrainer = classifier, pretrainer
        self.task_loss, self.weight = task_loss, weight
        self.tracked = {name: keras.metrics.Mean(name=name) for name in ("loss", "task_loss", "masked_lm_loss")}
        both = classifier.trainable_variables + pretrainer.trainable_variables
        self.trained = list({id(variable): variable for variable in both}.values())  # the shared encoder's once

    @property
    def metrics(self):
        return list(self.tracked.values())

    def call(self, features, training=False):
        return self.classifier({name: features[name] for name in INPUT_NAMES}, training=training)

    def train_step(self, data):
        features, targets = data
        masked = {name[len(MASKED_PREFIX) :]: v for name, v in features.items() if name.startswith(MASKED_PREFIX)}
        with tf.GradientTape() as tape:
            task = self.task_loss(targets, self(features, training=True))
            mlm_logits, _ = self.pretrainer(masked, training=True)
            mlm = masked_lm_loss(masked, mlm_logits)
            loss = task + self.weight * mlm
        gradients = tape.gradient(loss, self.trained)
        self.optimizer.apply_gradients([(g, v) for g, v in zip(gradients, self.trained, strict=True) if g is not None])
        for name, value in (("loss", loss), ("task_loss", task), ("masked_lm_loss", mlm)):
            self.tracked[name].update_state(value)
        return {name: metric.result() for name, metric in self.tracked.items()}


class LayerOutputs(keras.Model):
    """A backbone's embeddings output and every transformer layer's output, each [batch, seq, hidden], as a list:
    index 0 the embeddings (layer 0's input), index i + 1 layer i's output; through the backbone's own layers
    (weights shared)."""

    def __init__(self, backbone, **kwargs):
        super().__init__(**kwargs)
        layers = [layer for layer in backbone.layers if layer.name.startswith("transformer_layer_")]
        outputs = {f"layer_{i + 1:03d}": layer.output for i, layer in enumerate(layers)}
        outputs["layer_000"] = backbone.get_layer("embeddings_dropout").output
        self.outputs_of = keras.Model(backbone.input, outputs)

    def call(self, inputs, training=False):
        found = self.outputs_of(inputs, training=training)
        return [found[name] for name in sorted(found)]


def self_attention_relations(backbone, layer: int, layer_input, mask) -> tuple:
    """Transformer layer `layer`'s attention distributions softmax(Q K^T / sqrt(d)) and value relations
    softmax(V V^T / sqrt(d)) (MiniLM, Wang et al. 2020), each [batch, heads, seq, seq] in float32, computed from the
    layer's input with its own projections; padded keys get no weight (`mask`: [batch, seq], 1 for real tokens)."""
    from vbert.model.weights import query_key_value

    query, key, value = (
        keras.ops.cast(projection(layer_input), "float32") for projection in query_key_value(backbone, layer)
    )
    size = float(query.shape[-1])
    hidden = keras.ops.cast(mask, "float32")[:, None, None, :]

    def relation(a, b):
        scores = keras.ops.einsum("bqhd,bkhd->bhqk", a, b) / size**0.5
        return keras.ops.softmax(scores + (1.0 - hidden) * -1e9, axis=-1)

    return relation(query, key), relation(value, value)


def relation_divergence(teacher, student, mask):
    """KL(teacher || student) of two [batch, heads, seq, seq] row distributions, summed over keys and averaged over
    heads and real query positions (`mask`: [batch, seq])."""
    tiny = 1e-9
    per_row = keras.ops.sum(
        teacher * (keras.ops.log(teacher + tiny) - keras.ops.log(student + tiny)), axis=-1
    )  # [batch, heads, seq]
    rows = keras.ops.cast(mask, "float32")[:, None, :]
    heads = float(teacher.shape[1])
    return keras.ops.sum(per_row * rows) / keras.ops.maximum(keras.ops.sum(rows) * heads, 1.0)


class IntermediateDistiller(keras.Model):
    """Task-specific distillation through intermediate layers: the student's loss on its targets (soft and hard)
    + `hidden_weight` x the mean squared difference between the output of student layer j and teacher layer
    `teacher_layers[j]` over real tokens (TinyBERT's hidden-state loss, Jiao et al. 2020)
    + `attention_weight` x the KL divergence of the student's last-layer attention distributions and value relations
    from the teacher's last layer's (MiniLM's self-attention distillation, Wang et al. 2020; the student's layers
    are copies of the teacher's, so the heads match). The teacher stays fixed. The student's logits come from the
    same pass as its layer outputs (its pooler, dropout and classifier on the last layer)."""

    def __init__(
        self, student, teacher, teacher_layers, task_loss, hidden_weight: float, attention_weight: float = 0.0, **kw
    ):
        super().__init__(**kw)
        self.student, self.task_loss = student, task_loss
        self.hidden_weight, self.attention_weight = hidden_weight, attention_weight
        self.student_backbone, self.teacher_backbone = backbone_of(student), backbone_of(teacher)
        self.student_hidden = LayerOutputs(self.student_backbone)
        self.teacher_hidden = LayerOutputs(self.teacher_backbone)
        self.pooler = self.student_backbone.get_layer("pooled_dense")
        self.dropout = next(layer for layer in student.layers if isinstance(layer, keras.layers.Dropout))
        self.head = student.get_layer("classifier")
        self.teacher_layers = list(teacher_layers)
        names = ("loss", "task_loss", "hidden_state_loss", "attention_loss")
        self.tracked = {name: keras.metrics.Mean(name=name) for name in names}

    @property
    def metrics(self):
        return list(self.tracked.values())

    def call(self, features, training=False):
        return self.student(features, training=training)

    def logits_and_hidden(self, features, training: bool):
        """The student's logits and its embeddings and layer outputs (LayerOutputs' list), from one pass."""
        inputs = {
            "token_ids": features["input_ids"],
            "segment_ids": features["segment_ids"],
            "padding_mask": features["input_mask"],
        }
        hidden = self.student_hidden(inputs, training=training)
        pooled = self.dropout(self.pooler(hidden[-1][:, 0, :]), training=training)
        return self.head(pooled), hidden, inputs

    def hidden_state_loss(self, hidden, teacher, mask):
        pairs = zip(hidden[1:], self.teacher_layers, strict=True)
        return keras.ops.mean(
            keras.ops.stack([masked_mean_square(h, tf.stop_gradient(teacher[i + 1]), mask) for h, i in pairs])
        )

    def attention_loss(self, hidden, teacher, mask):
        """Last layer against last layer: attention distributions and value relations, each layer from its own
        input (the output before it)."""
        ours = self_attention_relations(self.student_backbone, len(hidden) - 2, hidden[-2], mask)
        last = self.teacher_layers[-1]
        theirs = self_attention_relations(self.teacher_backbone, last, teacher[last], mask)
        return sum(relation_divergence(tf.stop_gradient(t), s, mask) for t, s in zip(theirs, ours, strict=True))

    def train_step(self, data):
        features, targets = data
        mask = keras.ops.cast(features["input_mask"], "float32")
        zero = keras.ops.zeros(())
        with tf.GradientTape() as tape:
            logits, hidden, inputs = self.logits_and_hidden(features, training=True)
            teacher = self.teacher_hidden(inputs, training=False)
            task = self.task_loss(targets, logits)
            hidden_loss = self.hidden_state_loss(hidden, teacher, mask) if self.hidden_weight else zero
            attention = self.attention_loss(hidden, teacher, mask) if self.attention_weight else zero
            loss = task + self.hidden_weight * hidden_loss + self.attention_weight * attention
        variables = self.student.trainable_variables
        gradients = tape.gradient(loss, variables)
        self.optimizer.apply_gradients([(g, v) for g, v in zip(gradients, variables, strict=True) if g is not None])
        parts = (("loss", loss), ("task_loss", task), ("hidden_state_loss", hidden_loss), ("attention_loss", attention))
        for name, value in parts:
            self.tracked[name].update_state(value)
        return {name: metric.result() for name, metric in self.tracked.items()}


def masked_mean_square(a, b, mask):
    """The mean squared difference of two [batch, seq, hidden] tensors over the real tokens (mask [batch, seq]), in
    float32."""
    square = keras.ops.square(keras.ops.cast(a, "float32") - keras.ops.cast(b, "float32"))
    per_token = keras.ops.mean(square, axis=-1)
    return keras.ops.sum(per_token * mask) / keras.ops.maximum(keras.ops.sum(mask), 1.0)


def backbone_of(classifier):
    """The encoder inside a classifier `build_classifier` made."""
    return next(layer for layer in classifier.layers if layer.name.startswith("bert_backbone"))


def classifier_flops(config: BertConfig, seq_len: int, num_labels: int) -> int:
    """Forward-pass FLOPs of one sequence (a multiply-add counts 2), matrix products only, as is usual:
    per layer Q, K, V and output projections (4 x 2*s*h*h), attention scores and context (2 x 2*s*s*h), and the
    feed-forward block (2 x 2*s*h*i); then the pooler (2*h*h) and the classifier (2*h*labels)."""
    s, h, i = seq_len, config.hidden_size, config.intermediate_size
    per_layer = 4 * 2 * s * h * h + 2 * 2 * s * s * h + 2 * 2 * s * h * i
    return config.num_hidden_layers * per_layer + 2 * h * h + 2 * h * num_labels
