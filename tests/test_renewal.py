"""Due times, jitter bounds and backoff: the pure rules shared by the agent and the server."""

from __future__ import annotations

import datetime as dt

import pytest

from pkiforge.renewal import Backoff, RenewalPolicy, spread

START = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
END = START + dt.timedelta(days=90)


@pytest.mark.parametrize(
    ("policy", "due"),
    [
        (RenewalPolicy(jitter=0), START + dt.timedelta(days=60)),
        (RenewalPolicy(fraction=0.5, jitter=0), START + dt.timedelta(days=45)),
        (RenewalPolicy(renew_before=dt.timedelta(days=30), jitter=0), END - dt.timedelta(days=30)),
        (RenewalPolicy(renew_before=dt.timedelta(days=365), jitter=0), START),
        # the server's margin: later than 2/3 where the certificate lives long enough
        (RenewalPolicy(server_margin=dt.timedelta(days=10), jitter=0), END - dt.timedelta(days=10)),
        (
            RenewalPolicy(server_margin=dt.timedelta(days=30), jitter=0),
            START + dt.timedelta(days=60),
        ),
        # a margin longer than the certificate: 2/3 still (not at once, again and again)
        (
            RenewalPolicy(server_margin=dt.timedelta(days=365), jitter=0),
            START + dt.timedelta(days=60),
        ),
        (
            RenewalPolicy(
                renew_before=dt.timedelta(days=5), server_margin=dt.timedelta(days=30), jitter=0
            ),
            END - dt.timedelta(days=5),
        ),
    ],
    ids=[
        "two-thirds",
        "half",
        "renew-before",
        "renew-before-longer-than-life",
        "server-margin",
        "server-margin-at-two-thirds",
        "server-margin-longer-than-life",
        "renew-before-wins",
    ],
)
def test_due_time(policy: RenewalPolicy, due: dt.datetime) -> None:
    assert policy.due_at(START, END, serial=12345) == due


def test_jitter_only_moves_renewal_earlier_and_spreads_a_fleet() -> None:
    policy = RenewalPolicy(jitter=0.1)
    base = START + dt.timedelta(days=60)
    dues = [policy.due_at(START, END, serial) for serial in range(1, 2000, 7)]
    assert all(base - dt.timedelta(days=6) <= d <= base for d in dues)
    assert len(set(dues)) == len(dues)
    assert max(dues) - min(dues) > dt.timedelta(days=5)


def test_the_same_certificate_always_gets_the_same_due_time() -> None:
    assert spread(99) == spread(99) and 0 <= spread(99) < 1


def test_backoff_grows_and_is_capped() -> None:
    backoff = Backoff(initial=1, factor=2, cap=30)
    assert [backoff.delay(n) for n in range(7)] == [1, 2, 4, 8, 16, 30, 30]
    assert backoff.delay(3, rand=0) == 4  # jitter takes off up to half
    assert backoff.delay(10_000) == 30


@pytest.mark.parametrize(
    "bad",
    [
        {"fraction": 0},
        {"fraction": 1},
        {"jitter": 1},
        {"renew_before": dt.timedelta(0)},
    ],
    ids=["fraction-0", "fraction-1", "jitter-1", "renew-before-0"],
)
def test_out_of_range_policies_are_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        RenewalPolicy(**bad)  # type: ignore[arg-type]
