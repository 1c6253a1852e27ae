import signal

import pytest

from tf_ganimation.training import faults


def test_nonfinite_guard_skips_up_to_the_limit_then_names_the_step_and_the_terms():
    finite = {"critic_loss": 1.0, "generator_loss": 2.0}
    none_skipped = {"critic": 0.0, "generator": 0.0}
    guard = faults.NonFiniteGuard(max_skips=1)
    assert guard.check(3, finite, none_skipped) is False
    assert guard.check(4, {"critic_loss": float("nan"), "generator_loss": 2.0}, {"critic": 1.0, "generator": 0.0})
    with pytest.raises(faults.NonFiniteLossError) as error:
        guard.check(9, finite, {"critic": 0.0, "generator": 1.0}, lambda: "/run/checkpoints/ckpt-8")
    message = str(error.value)
    assert "step 9: non-finite loss terms: finite losses but non-finite gradients" in message
    assert "updates not applied: generator" in message and "after skipping 1 such steps" in message
    assert "ckpt-8, is kept as it was" in message and "--max_nonfinite_skips" in message
    with pytest.raises(faults.NonFiniteLossError, match=r"at step 1: non-finite loss terms: generator_loss=inf"):
        faults.NonFiniteGuard(0).check(1, {"generator_loss": float("inf")}, none_skipped)


def test_a_skipped_step_is_counted_and_warned_about(capsys):
    guard = faults.NonFiniteGuard(max_skips=2)
    assert guard.check(5, {"critic_loss": float("nan")}, {"critic": 1.0, "generator": 0.0}) is True
    assert guard.skipped_steps == [5]
    assert ("warning: skipped the batch of step 5: non-finite loss terms: critic_loss=nan (updates not applied: "
            "critic) [1 of at most 2]") in capsys.readouterr().err


@pytest.mark.parametrize("number", [signal.SIGTERM, signal.SIGINT])
def test_interrupt_flag_records_the_signal_only_while_installed(number):
    before = signal.getsignal(number)
    flag = faults.InterruptFlag()
    assert flag.signal_number == 0
    with flag.installed():
        signal.raise_signal(number)  # handled by the flag: the process goes on
        assert flag.signal_number == number
    assert signal.getsignal(number) is before
