from tf_ganimation.core.config import Config, DataConfig, OptimizerConfig, RunConfig
from tf_ganimation.training import schedule


def test_schedule_counts_steps_per_epoch_from_the_global_batch():
    config = Config(data=DataConfig(batch_size=25, n_critic=5), optimizer=OptimizerConfig(epochs=30, decay_epochs=10))
    run = schedule.make_schedule(config, num_train_examples=200_000)
    assert run.steps_per_epoch == 1600  # 200,000 / (25 x 5)
    assert (run.total_steps, run.final_step, run.decay_steps) == (48_000, 48_000, 16_000)
    capped = Config(data=DataConfig(batch_size=25, n_critic=5), run=RunConfig(max_steps=7))
    assert schedule.make_schedule(capped, 200_000).final_step == 7
