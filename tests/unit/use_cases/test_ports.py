"""The ports fit what stands behind them: every adapter the wiring builds, and every shared fake
the unit tests use, has each method its port names, with the same parameters (names, kinds,
defaults). The type checker holds the types (mypy checks tests/support/fakes.py against the ports,
and the wiring's Collaborators wherever an entry point hands it to a use case); this holds the
shapes at run time, fakes and adapters alike."""

from __future__ import annotations

import inspect
from typing import Any

import pytest

from imagegateway.adapters.image_store import ImageStore
from imagegateway.adapters.job_store import JobStore
from imagegateway.adapters.notifier import Notifier
from imagegateway.adapters.upstream_client import UpstreamClient
from imagegateway.adapters.upstream_durations import UpstreamDurations
from imagegateway.adapters.usage_store import UsageStore
from imagegateway.adapters.webhook_secrets import WebhookSecrets
from imagegateway.adapters.workflow import Workflow
from imagegateway.entrypoints.wiring import Collaborators
from imagegateway.platform.settings import Settings
from imagegateway.use_cases import ports
from tests.support.fakes import (
    FakeImageStore,
    FakeJobStore,
    FakeNotifier,
    FakeUpstream,
    FakeUpstreamDurations,
    FakeUsageStore,
    FakeWebhookSecrets,
    FakeWorkflow,
    fake_ports,
)

# Each port, the adapter the wiring builds for it, and its shared fake.
PORTS: list[tuple[type[Any], type[Any], type[Any]]] = [
    (ports.JobStore, JobStore, FakeJobStore),
    (ports.Upstream, UpstreamClient, FakeUpstream),
    (ports.ImageStore, ImageStore, FakeImageStore),
    (ports.Workflow, Workflow, FakeWorkflow),
    (ports.Notifier, Notifier, FakeNotifier),
    (ports.UsageStore, UsageStore, FakeUsageStore),
    (ports.WebhookSecrets, WebhookSecrets, FakeWebhookSecrets),
    (ports.UpstreamDurations, UpstreamDurations, FakeUpstreamDurations),
]
PORTS_MEMBERS = [
    "settings",
    "jobs",
    "upstream",
    "images",
    "workflow",
    "notifier",
    "usage",
    "webhook_secrets",
    "durations",
    "clock",
    "sleep",
    "require_upstream_key",
]


def methods_of(port: type[Any]) -> list[str]:
    return sorted(
        name for name, value in vars(port).items() if callable(value) and not name.startswith("_")
    )


def shape(cls: type[Any], name: str) -> list[tuple[str, Any, bool]]:
    """A method's parameters as a caller sees them (no self): name, kind, whether defaulted."""
    member = inspect.getattr_static(cls, name)
    function = member.__func__ if isinstance(member, staticmethod) else member
    parameters = list(inspect.signature(function).parameters.values())
    if not isinstance(member, staticmethod):
        parameters = parameters[1:]
    return [(p.name, p.kind, p.default is not inspect.Parameter.empty) for p in parameters]


def test_every_port_names_the_methods_the_use_cases_call() -> None:
    # Given the ports / Then none is empty (a port with no methods would fit anything)
    assert all(methods_of(port) for port, _, _ in PORTS)
    assert "parse" in methods_of(ports.JobStore)  # the reconciler parses raw rows one by one


@pytest.mark.parametrize(("port", "adapter", "fake"), PORTS, ids=lambda cls: cls.__name__)
def test_the_adapter_and_the_fake_have_every_method_of_their_port_in_its_shape(
    port: type[Any], adapter: type[Any], fake: type[Any]
) -> None:
    # Given a port, its adapter and its fake
    for name in methods_of(port):
        # When each method is looked up on both / Then both have it, with the port's parameters
        expected = shape(port, name)
        assert shape(adapter, name) == expected, f"{adapter.__name__}.{name}"
        assert shape(fake, name) == expected, f"{fake.__name__}.{name}"


@pytest.mark.parametrize(("port", "fake"), [(port, fake) for port, _, fake in PORTS])
def test_a_fake_is_an_instance_of_its_port(port: type[Any], fake: type[Any]) -> None:
    # Given the fake made as fake_ports makes it / Then the runtime protocol check accepts it
    deps = fake_ports()
    made = {type(value): value for value in vars(deps).values()}
    assert isinstance(made[fake], port)


def test_the_wiring_and_the_fakes_both_offer_everything_a_use_case_is_handed() -> None:
    # Given the wiring's collaborators (nothing built: looked up statically) and the fakes
    wired = Collaborators(Settings(jobs_table_name="jobs", images_bucket_name="images"))
    faked = fake_ports()
    # Then each has every member of Ports, and the wiring built no adapter to show it
    for deps in (wired, faked):
        missing = [name for name in PORTS_MEMBERS if not _has_static(deps, name)]
        assert missing == [], type(deps).__name__
    adapters = {"jobs", "upstream", "images", "workflow", "notifier", "usage", "webhook_secrets"}
    adapters |= {"durations"}
    assert not adapters & set(vars(wired))
    # and Ports names nothing more than those
    declared = {name for name in vars(ports.Ports) if not name.startswith("_")}
    assert declared == set(PORTS_MEMBERS)


def _has_static(obj: object, name: str) -> bool:
    try:
        inspect.getattr_static(obj, name)
    except AttributeError:
        return False
    return True
