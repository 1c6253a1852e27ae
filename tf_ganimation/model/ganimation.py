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
   each variable and its moments as they were. `update` returns which updates were skipped; `train_step`
   (for `fit`) also counts them in `skipped_updates`, which is not part of its logs.
6. Steps are counted by `train_steps`, a variable of the algorithm's own (not an optimizer's iteration
   count, which float16 loss scaling holds back on the updates it skips); the gradient penalty's random
   draws and the training loop's step numbers come from it.
7. XLA (training.trainer): one device compiles a whole step. Under MirroredStrategy the gradient
   computations are compiled per replica (`update(..., compile_gradients=)`) and the all-reduce and the
   optimizer updates run outside XLA, where TensorFlow's cross-device code runs.
8. One update path: `update` is n_critic `critic_step`s and a `generator_step`, compiled or not.
   Uncompiled, the last sub-batch's edit is made once, under a tape that the generator update resumes,
   and serves the last critic update too; with compiled gradient functions each step makes its own
   (a tape cannot span compiled functions): one generator forward pass more per step.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from tf_ganimation.core import pixels
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


def _uncompiled(function):
    """`update`'s compile_gradients when nothing is compiled: the function itself."""
    return function


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
        # The train_steps made (note 6); the first replica's increment counts under MirroredStrategy.
        self.train_steps = tf.Variable(0, dtype=tf.int64, trainable=False, name="train_steps",
                                       aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)

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
        """`update`, with its loss terms and skips counted in the Keras metrics (for `fit`): the logs."""
        values, skipped = self.update(data)
        self._track(**values)
        for network, count in skipped.items():
            self.skipped_updates[network].update_state(count)
        return {name: tracker.result() for name, tracker in self.trackers.items()}

    def update(self, data, compile_gradients=None) -> tuple[dict, dict]:
        """One train_step: n_critic `critic_step`s, then one `generator_step`; increments train_steps.

        The one update path: `train_step` (for `fit`), the training loop, the benchmarks and the tests
        all come through here or through the two steps it calls.

        Args:
            data: see the class docstring; "real_image" uint8 [0, 255] or float [-1, 1] (uint8 batches
                are normalised here, on the device).
            compile_gradients: None, or a function turning a Python function into its compiled form
                (e.g. `functools.partial(tf.function, jit_compile=True)`); it is applied to the loss and
                gradient computations, not to the optimizer updates (note 7). Nothing else changes.

        Returns:
            (loss terms: name -> float32 [], this step's values; skipped: network -> float32 [], the
            number of its updates the non-finite guard skipped on this replica).
        """
        # Plan (paper Sec. 4.2 and 5, WGAN-GP with n_critic = 5):
        # 1. For each sub-batch k < n_critic: fake = compose(G(real_k, target_k)), with no gradient
        #    through G; update the critic on -D(real) + D(fake) + lambda_gp * GP
        #    + lambda_aus * |D_aus(real) - real_aus|^2.
        # 2. On the last sub-batch, update the generator on -D(fake) + lambda_aus * |D_aus(fake) - target|^2
        #    + lambda_cyc * |G(fake, real_aus) - real| + attention mean and total variation terms, for the
        #    attention masks of both the edit and the reconstruction.
        # 3. Report every term.
        real_image = data["real_image"]
        if real_image.dtype == tf.uint8:
            real_image = tf.gather(tf.constant(pixels.UINT8_TO_MODEL_TABLE), tf.cast(real_image, tf.int32))
        real_aus, target_aus = data["real_aus"], data["target_aus"]
        n_critic = real_image.shape[1]
        first_update = tf.convert_to_tensor(self.train_steps) * n_critic
        critic_gradients, generator_gradients = self.gradient_functions(compile_gradients)
        # Uncompiled, the last sub-batch's edit, recorded once, serves the last critic update and the
        # generator update (note 8); compiled, each makes its own (a tape cannot span compiled functions).
        recorded = self._recorded_edit(real_image[:, -1], target_aus[:, -1]) if compile_gradients is None else None
        values, skipped = {}, {"critic": tf.constant(0.0)}
        for k in range(n_critic):
            shared = recorded[1]["fake_image"] if recorded and k == n_critic - 1 else None
            terms, critic_skipped = self.critic_step(real_image[:, k], real_aus[:, k], target_aus[:, k],
                                                     first_update + k, critic_gradients, shared)
            values.update(terms)
            skipped["critic"] += critic_skipped
        terms, skipped["generator"] = self.generator_step(real_image[:, -1], real_aus[:, -1], target_aus[:, -1],
                                                          generator_gradients, recorded)
        values.update(terms)
        self.train_steps.assign_add(1)
        return values, skipped

    def gradient_functions(self, compile_gradients=None) -> tuple:
        """(critic's, generator's) loss-and-gradient functions, each passed through `compile_gradients`
        (`update`'s) once, for the steps of one train_step to share."""
        compile_gradients = compile_gradients or _uncompiled
        return compile_gradients(self._critic_gradients), compile_gradients(self._generator_gradients)

    def critic_step(self, real_image, real_aus, target_aus, update_index, gradients=None, fake_image=None
                    ) -> tuple[dict, tf.Tensor]:
        """One critic update on a sub-batch, edited by the current generator (plan step 1).

        Args:
            real_image: float32 [batch, H, W, 3] in [-1, 1]; real_aus, target_aus: float32 [batch, 17] in [0, 1].
            update_index: int64 [], the critic update's number in the run (train_steps * n_critic + k): it
                seeds the gradient penalty's alpha, so a run draws the same alphas however it is resumed.
            gradients: the critic's function of `gradient_functions` (compiled or not); None: uncompiled.
            fake_image: the current generator's edit of real_image to target_aus, when already made
                (uncompiled only); None: made here.

        Returns:
            (loss terms: critic_loss, wasserstein_distance, gradient_penalty, critic_aus_loss, float32 [];
            skipped: float32 [], 1.0 when the non-finite guard skipped the update).
        """
        gradients_of = gradients or self._critic_gradients
        # Drawn outside compile_gradients: XLA's random numbers differ from TensorFlow's kernels'.
        alpha = self._penalty_weights(real_image, update_index)
        loss, weight_gradients, terms, overflow = gradients_of(real_image, real_aus, target_aus, alpha, fake_image)
        return terms, self._apply(self.critic, self.critic_optimizer, loss, weight_gradients, overflow)

    def generator_step(self, real_image, real_aus, target_aus, gradients=None, recorded=None
                       ) -> tuple[dict, tf.Tensor]:
        """One generator update on a sub-batch (plan step 2); arguments and returns as `critic_step`'s, with
        the generator's loss terms and function of `gradient_functions`; `recorded`: `_recorded_edit`'s
        (tape, edited) of this sub-batch (uncompiled only), or None to make the edit here."""
        gradients_of = gradients or self._generator_gradients
        loss, weight_gradients, terms = gradients_of(real_image, real_aus, target_aus, recorded)
        return terms, self._apply(self.generator, self.generator_optimizer, loss, weight_gradients)

    def _penalty_weights(self, real_image, update_index) -> tf.Tensor:
        """The gradient penalty's alpha for a critic update: float32 [batch], seeded by the update's number."""
        seed = tf.stack([tf.cast(self.seed, tf.int64), tf.cast(update_index, tf.int64)])
        return _interpolation_weights(tf.shape(real_image)[0], seed)

    def _critic_gradients(self, real_image, real_aus, target_aus, alpha, fake_image=None):
        """A critic update's loss and gradients on a sub-batch, edited by the current generator.

        Args:
            real_image: float32 [batch, H, W, 3] in [-1, 1]; real_aus, target_aus: float32 [batch, 17].
            alpha: float32 [batch], the gradient penalty's interpolation weights (`_penalty_weights`).
            fake_image: the generator's edit of real_image to target_aus, or None to make it here.

        Returns:
            (loss float32 [], gradients of the loss-scaled replica loss, loss terms, overflow: bool [],
            True when float16 loss scaling overflowed inside the gradient penalty).
        """
        config = self.loss_config
        if fake_image is None:
            fake_image = self.edit(real_image, target_aus)["fake_image"]
        fake_image = tf.stop_gradient(fake_image)
        loss_scale = getattr(self.critic_optimizer, "dynamic_scale", None)
        with tf.GradientTape() as tape:
            scores = self.critic(tf.concat([real_image, fake_image], axis=0))
            real_realism, fake_realism = tf.split(scores["realism"], 2, axis=0)
            real_predicted_aus, _ = tf.split(scores["aus"], 2, axis=0)
            adversarial = losses.wasserstein_critic_loss(real_realism, fake_realism)
            penalty, overflow = losses.gradient_penalty(lambda x: self.critic(x)["realism"], real_image, fake_image,
                                                        alpha, loss_scale=loss_scale, with_overflow=True)
            aus_loss = losses.au_regression_loss(real_predicted_aus, real_aus)
            loss = adversarial + config.lambda_gp * penalty + config.lambda_aus * aus_loss
            scaled = self.critic_optimizer.scale_loss(_replica_scaled(loss))
        gradients = tape.gradient(scaled, self.critic.trainable_variables)
        return loss, gradients, dict(critic_loss=loss, wasserstein_distance=-adversarial, gradient_penalty=penalty,
                                     critic_aus_loss=aus_loss), overflow

    def _generator_gradients(self, real_image, real_aus, target_aus, recorded=None):
        """The generator update's loss, gradients of the loss-scaled replica loss, and loss terms;
        `recorded`: `_recorded_edit`'s (tape, edited), or None to make the edit here."""
        config = self.loss_config
        tape, edited = recorded or self._recorded_edit(real_image, target_aus)
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
        gradients = tape.gradient(scaled, self.generator.trainable_variables)
        return loss, gradients, dict(generator_loss=loss, generator_adversarial_loss=adversarial,
                                     generator_aus_loss=aus_loss, cycle_loss=cycle, attention_mean_loss=attention_mean,
                                     attention_tv_loss=attention_tv, attention_mean=tf.reduce_mean(edited["attention"]))

    def _recorded_edit(self, real_image, target_aus):
        """`edit` under a new gradient tape that `_generator_gradients` resumes: (tape, edited)."""
        tape = tf.GradientTape()
        with tape:
            edited = self.edit(real_image, target_aus)
        return tape, edited

    def _apply(self, network, optimizer, loss, gradients, overflow=None) -> tf.Tensor:
        """Applies guarded gradients to `network`: float32 [], 1.0 when the non-finite guard skipped the update.

        `overflow` (float16 loss scaling inside the gradient penalty) makes every gradient non-finite so
        that the LossScaleOptimizer skips the update and lowers its scale, as for any overflow; it is
        not a fault, so it is not counted as skipped.
        """
        gradients, finite = _guarded(loss, gradients, optimizer)
        if overflow is not None:
            gradients = [None if g is None else tf.where(overflow, tf.constant(float("inf"), g.dtype), g)
                         for g in gradients]
        optimizer.apply_gradients(zip(gradients, network.trainable_variables))
        return 1.0 - tf.cast(finite, tf.float32)

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
                jit_compile=False)  # the training loop compiles its steps itself (training.trainer)
    return gan


def current_step(gan: GANimation) -> int:
    """The train_steps `gan` has made (`GANimation.train_steps`)."""
    return int(gan.train_steps.numpy())


def make_checkpoint(gan: GANimation) -> tf.train.Checkpoint:
    """Both networks, both optimizers and the step count, as training saves them.

    The networks' weights are addressed through the networks themselves (generator/encoder_1/...), so
    a reader that needs only the networks restores them alone (runs.loading.load_checkpoint).
    """
    return tf.train.Checkpoint(generator=gan.generator, critic=gan.critic, train_steps=gan.train_steps,
                               generator_optimizer=gan.generator_optimizer, critic_optimizer=gan.critic_optimizer)
