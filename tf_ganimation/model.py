"""The GANimation algorithm: critic and generator updates in one `keras.Model.train_step`.

`GANimation` owns the algorithm, not the architecture: it receives a built `Generator` and `Critic`,
`compile()` takes their two optimizers, and `train_step` follows Sec. 4.2 and 5 of the paper.

Design facts measured on TF 2.21 / Keras 3.15 (BUILD_NOTES.md has the details):
1. An optimizer update inside `tf.cond` fails under MirroredStrategy, so every call unrolls n_critic
   critic updates and one generator update instead of counting calls.
2. Both optimizers are built on their variables in `compile()`, which runs inside `strategy.scope()`.
3. `call()` is defined (inference) so the wrapper builds under MirroredStrategy.
4. Keras sums gradients over replicas: each replica's loss is divided by `num_replicas_in_sync`
   inside the tape, in `_replica_scaled` and nowhere else.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from tf_ganimation import losses
from tf_ganimation.config import LossConfig
from tf_ganimation.networks import Critic, Generator, compose


@keras.saving.register_keras_serializable(package="tf_ganimation")
class LinearDecaySchedule(keras.optimizers.schedules.LearningRateSchedule):
    """Constant learning rate, then linear decay to zero over the last `decay_steps` (paper Sec. 5).

    A function of the optimizer's own iteration count, so it resumes exactly from a checkpoint.
    """

    def __init__(self, initial_learning_rate: float, total_steps: int, decay_steps: int):
        self.initial_learning_rate = float(initial_learning_rate)
        self.total_steps = int(total_steps)
        self.decay_steps = int(decay_steps)

    def __call__(self, step):
        step = tf.cast(step, tf.float32)
        if self.decay_steps <= 0:
            return tf.constant(self.initial_learning_rate, tf.float32)
        remaining = tf.cast(self.total_steps, tf.float32) - step
        fraction = tf.clip_by_value(remaining / float(self.decay_steps), 0.0, 1.0)
        return self.initial_learning_rate * fraction

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate, "total_steps": self.total_steps,
                "decay_steps": self.decay_steps}


def _interpolation_weights(local_batch_size, seed) -> tf.Tensor:
    """The gradient penalty's alpha ~ U[0, 1) for this replica's examples: float32 [local_batch_size].

    Drawn statelessly for the global batch and sliced by replica, so a run gives the same numbers on
    any number of replicas and after a resume (the seed includes the optimizer's step).
    """
    context = tf.distribute.get_replica_context()
    num_replicas = tf.distribute.get_strategy().num_replicas_in_sync
    replica_id = tf.cast(context.replica_id_in_sync_group if context else 0, tf.int32)
    alpha = tf.random.stateless_uniform([local_batch_size * num_replicas], seed=seed)
    return alpha[replica_id * local_batch_size:(replica_id + 1) * local_batch_size]


def _replica_scaled(loss: tf.Tensor) -> tf.Tensor:
    """A replica's loss divided by the replica count: the one place where distribution enters."""
    return loss / tf.cast(tf.distribute.get_strategy().num_replicas_in_sync, loss.dtype)


@keras.saving.register_keras_serializable(package="tf_ganimation")
class GANimation(keras.Model):
    """Trains a generator and a critic with GANimation's losses.

    Each dataset element is a dict (see data.py) with the batch first and n_critic sub-batches second:
    `real_image` float32 [batch, n_critic, H, W, 3] in [-1, 1], `real_aus` and `target_aus` float32
    [batch, n_critic, 17] in [0, 1]. One `train_step` makes n_critic critic updates, update k on
    sub-batch k, then one generator update on the last sub-batch.

    Calling the model edits images: {"real_image", "target_aus"} -> fake image [batch, H, W, 3].
    """

    def __init__(self, generator: Generator, critic: Critic, loss_config: LossConfig = LossConfig(),
                 seed: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.generator = generator
        self.critic = critic
        self.loss_config = loss_config
        self.seed = seed
        names = ["critic_loss", "wasserstein_distance", "gradient_penalty", "critic_aus_loss",
                 "generator_loss", "generator_adversarial_loss", "generator_aus_loss", "cycle_loss",
                 "attention_mean_loss", "attention_tv_loss", "attention_mean"]
        self.trackers = {name: keras.metrics.Mean(name=name) for name in names}
        self.built = True  # both networks arrive built; a wrapper without weights of its own.

    def compile(self, generator_optimizer: keras.optimizers.Optimizer,
                critic_optimizer: keras.optimizers.Optimizer, **kwargs):
        """Takes the two optimizers and builds them; call it inside the distribution strategy's scope."""
        super().compile(**kwargs)
        self.generator_optimizer = generator_optimizer
        self.critic_optimizer = critic_optimizer
        generator_optimizer.build(self.generator.trainable_variables)
        critic_optimizer.build(self.critic.trainable_variables)

    @property
    def metrics(self):
        return list(self.trackers.values())

    def call(self, inputs):
        return self.edit(inputs["real_image"], inputs["target_aus"])["fake_image"]

    def edit(self, real_image, target_aus):
        """Generator pass and composition: {"fake_image", "color", "attention"}, all [batch, H, W, c]."""
        outputs = self.generator(real_image, target_aus)
        fake_image = compose(real_image, outputs["color"], outputs["attention"])
        return {"fake_image": fake_image, **outputs}

    def train_step(self, data):
        # Plan (paper Sec. 4.2 and 5, WGAN-GP with n_critic = 5):
        # 1. For each sub-batch k < n_critic: fake = compose(G(real_k, target_k)), with no gradient
        #    through G; update the critic on -D(real) + D(fake) + lambda_gp * GP
        #    + lambda_aus * |D_aus(real) - real_aus|^2.
        # 2. On the last sub-batch, update the generator on -D(fake) + lambda_aus * |D_aus(fake) - target|^2
        #    + lambda_cyc * |G(fake, real_aus) - real| + attention mean and total variation terms, for the
        #    attention masks of both the edit and the reconstruction.
        # 3. Report every term.
        n_critic = data["real_image"].shape[1]
        for k in range(n_critic):
            self._critic_update(data["real_image"][:, k], data["real_aus"][:, k], data["target_aus"][:, k])
        self._generator_update(data["real_image"][:, -1], data["real_aus"][:, -1], data["target_aus"][:, -1])
        return {name: tracker.result() for name, tracker in self.trackers.items()}

    def _critic_update(self, real_image, real_aus, target_aus):
        config = self.loss_config
        fake_image = tf.stop_gradient(self.edit(real_image, target_aus)["fake_image"])
        with tf.GradientTape() as tape:
            scores = self.critic(tf.concat([real_image, fake_image], axis=0))
            real_realism, fake_realism = tf.split(scores["realism"], 2, axis=0)
            real_predicted_aus, _ = tf.split(scores["aus"], 2, axis=0)
            adversarial = losses.wasserstein_critic_loss(real_realism, fake_realism)
            alpha = _interpolation_weights(tf.shape(real_image)[0],
                                           tf.stack([tf.cast(self.seed, tf.int64), tf.convert_to_tensor(self.critic_optimizer.iterations)]))
            penalty = losses.gradient_penalty(lambda x: self.critic(x)["realism"], real_image, fake_image, alpha)
            aus_loss = losses.au_regression_loss(real_predicted_aus, real_aus)
            loss = adversarial + config.lambda_gp * penalty + config.lambda_aus * aus_loss
            scaled = self.critic_optimizer.scale_loss(_replica_scaled(loss))
        variables = self.critic.trainable_variables
        self.critic_optimizer.apply_gradients(zip(tape.gradient(scaled, variables), variables))
        self._track(critic_loss=loss, wasserstein_distance=-adversarial, gradient_penalty=penalty,
                    critic_aus_loss=aus_loss)

    def _generator_update(self, real_image, real_aus, target_aus):
        config = self.loss_config
        with tf.GradientTape() as tape:
            edited = self.edit(real_image, target_aus)
            reconstructed = self.edit(edited["fake_image"], real_aus)
            scores = self.critic(edited["fake_image"])
            adversarial = losses.wasserstein_generator_loss(scores["realism"])
            aus_loss = losses.au_regression_loss(scores["aus"], target_aus)
            cycle = losses.cycle_consistency_loss(reconstructed["fake_image"], real_image)
            attention_mean = (losses.attention_mean_loss(edited["attention"])
                              + losses.attention_mean_loss(reconstructed["attention"]))
            attention_tv = (losses.attention_total_variation_loss(edited["attention"])
                            + losses.attention_total_variation_loss(reconstructed["attention"]))
            loss = (adversarial + config.lambda_aus * aus_loss + config.lambda_cyc * cycle
                    + config.lambda_attention * attention_mean + config.lambda_tv * attention_tv)
            scaled = self.generator_optimizer.scale_loss(_replica_scaled(loss))
        variables = self.generator.trainable_variables
        self.generator_optimizer.apply_gradients(zip(tape.gradient(scaled, variables), variables))
        self._track(generator_loss=loss, generator_adversarial_loss=adversarial, generator_aus_loss=aus_loss,
                    cycle_loss=cycle, attention_mean_loss=attention_mean, attention_tv_loss=attention_tv,
                    attention_mean=tf.reduce_mean(edited["attention"]))

    def _track(self, **values):
        for name, value in values.items():
            self.trackers[name].update_state(value)


def make_optimizer(learning_rate, beta_1: float, beta_2: float, mixed_precision: str = "none"):
    """Adam with the paper's betas; wrapped in dynamic loss scaling for float16 mixed precision."""
    optimizer = keras.optimizers.Adam(learning_rate=learning_rate, beta_1=beta_1, beta_2=beta_2)
    if mixed_precision == "mixed_float16":
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer
