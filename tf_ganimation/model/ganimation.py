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
5. Non-finite guard, without `tf.cond` (see 1): an update whose loss or gradients hold a NaN or Inf on
   any replica is skipped whole. `_guarded` turns all of that replica's gradients into NaN; the
   all-reduce inside `apply_gradients` spreads the NaN to every replica; `optimizers.GuardedAdam` then leaves
   each variable and its moments as they were (a `tf.where` on the update). Skips are counted in
   `skipped_updates` (per replica), which is not part of train_step's logs.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from tf_ganimation.core.config import Config, LossConfig
from tf_ganimation.model import losses, optimizers
from tf_ganimation.model.networks import Critic, Generator, build_critic, build_generator, compose


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


def _guarded(loss: tf.Tensor, gradients: list, optimizer) -> tuple[list, tf.Tensor]:
    """The gradients unchanged when `loss` and every gradient are finite, else all NaN; and that flag.

    NaN (rather than zero) so that the sum over replicas in `apply_gradients` makes the update
    non-finite on every replica, whichever replica went wrong; `GuardedAdam` skips it there. Under
    float16 loss scaling only the loss is checked: gradients that overflow are the
    LossScaleOptimizer's business (it skips the update and lowers the scale), not a fault.

    Returns:
        (gradients, finite: bool []), None gradients kept as None.
    """
    finite = tf.reduce_all(tf.math.is_finite(loss))
    if not isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        for gradient in gradients:
            if gradient is not None:
                finite = tf.logical_and(finite, tf.reduce_all(tf.math.is_finite(gradient)))
    guarded = [None if gradient is None else tf.where(finite, gradient, tf.constant(float("nan"), gradient.dtype))
               for gradient in gradients]
    return guarded, finite


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
        # Updates skipped by the non-finite guard (see note 5), summed over replicas when read.
        self.skipped_updates = {network: keras.metrics.Sum(name=f"skipped_{network}_updates")
                                for network in ("critic", "generator")}
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
        real_image, real_aus, target_aus = (data[key] for key in ("real_image", "real_aus", "target_aus"))
        n_critic = real_image.shape[1]
        # The critic updates leave G unchanged, so the last sub-batch's edit serves the last critic update
        # and, recorded, the generator update: one generator pass fewer per step.
        generator_tape, edited = self._recorded_edit(real_image[:, -1], target_aus[:, -1])
        for k in range(n_critic):
            fake_image = (edited if k == n_critic - 1 else self.edit(real_image[:, k], target_aus[:, k]))["fake_image"]
            self._critic_update(real_image[:, k], real_aus[:, k], fake_image)
        self._generator_update(generator_tape, edited, real_image[:, -1], real_aus[:, -1], target_aus[:, -1])
        return {name: tracker.result() for name, tracker in self.trackers.items()}

    def _critic_update(self, real_image, real_aus, fake_image):
        """One critic update on a sub-batch; `fake_image` [batch, H, W, 3] from the current generator."""
        config = self.loss_config
        fake_image = tf.stop_gradient(fake_image)
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
        gradients, finite = _guarded(loss, tape.gradient(scaled, variables), self.critic_optimizer)
        self.critic_optimizer.apply_gradients(zip(gradients, variables))
        self.skipped_updates["critic"].update_state(1.0 - tf.cast(finite, tf.float32))
        self._track(critic_loss=loss, wasserstein_distance=-adversarial, gradient_penalty=penalty,
                    critic_aus_loss=aus_loss)

    def _recorded_edit(self, real_image, target_aus):
        """`edit` under a new gradient tape that `_generator_update` resumes: (tape, edited)."""
        tape = tf.GradientTape()
        with tape:
            edited = self.edit(real_image, target_aus)
        return tape, edited

    def _generator_update(self, tape, edited, real_image, real_aus, target_aus):
        """One generator update; `tape` and `edited` from `_recorded_edit(real_image, target_aus)`."""
        config = self.loss_config
        with tape:  # resumes recording
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
        gradients, finite = _guarded(loss, tape.gradient(scaled, variables), self.generator_optimizer)
        self.generator_optimizer.apply_gradients(zip(gradients, variables))
        self.skipped_updates["generator"].update_state(1.0 - tf.cast(finite, tf.float32))
        self._track(generator_loss=loss, generator_adversarial_loss=adversarial, generator_aus_loss=aus_loss,
                    cycle_loss=cycle, attention_mean_loss=attention_mean, attention_tv_loss=attention_tv,
                    attention_mean=tf.reduce_mean(edited["attention"]))

    def _track(self, **values):
        for name, value in values.items():
            self.trackers[name].update_state(value)


def make_gan(config: Config, total_steps: int, decay_steps: int) -> GANimation:
    """Both networks of `config.model`, the GAN wrapper and both Adam optimizers, compiled.

    Call it inside the distribution strategy's scope (note 2).

    Args:
        config: the networks' sizes (model), the loss weights (loss), Adam's settings (optimizer),
            n_critic (data), the seed, the precision and XLA (run).
        total_steps: train_steps of the whole run, the learning-rate schedules' length (paper Sec. 5:
            epochs x steps per epoch).
        decay_steps: the final train_steps over which both learning rates decay linearly to zero.
            The critic's schedule counts its own updates, n_critic per train_step.
    """
    gan = GANimation(build_generator(config.model), build_critic(config.model), config.loss, seed=config.run.seed)
    settings = config.optimizer

    def adam(learning_rate: float, updates_per_step: int):
        decay = optimizers.LinearDecaySchedule(learning_rate, total_steps * updates_per_step,
                                               decay_steps * updates_per_step)
        return optimizers.make_optimizer(decay, settings.beta_1, settings.beta_2, config.run.mixed_precision)

    gan.compile(generator_optimizer=adam(settings.generator_learning_rate, 1),
                critic_optimizer=adam(settings.critic_learning_rate, config.data.n_critic),
                jit_compile=config.run.jit_compile)
    return gan


def current_step(gan: GANimation) -> int:
    """The train_steps `gan` has made: its generator optimizer's iteration count (one update per step)."""
    return int(gan.generator_optimizer.iterations.numpy())


def make_checkpoint(gan: GANimation) -> tf.train.Checkpoint:
    """Both networks and both optimizers (whose iteration counts are the step), as training saves them.

    Notes: TensorFlow's checkpoint graph does not see the layers Keras 3 keeps in Python lists (the
    generator's encoder, bottleneck and decoder, the critic's trunk): their variables are saved and
    restored through the optimizers' variable lists. A checkpoint read without the optimizers leaves
    them at their initial values, so readers (runs.loading.load_checkpoint) build both optimizers too.
    """
    return tf.train.Checkpoint(generator=gan.generator, critic=gan.critic,
                               generator_optimizer=gan.generator_optimizer, critic_optimizer=gan.critic_optimizer)
