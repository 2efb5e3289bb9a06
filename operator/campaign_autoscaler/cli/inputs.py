"""What the commands read: files named on the command line, the kubeconfig, the CampaignEvent specs."""

from __future__ import annotations

import os
import stat
import sys
from typing import TYPE_CHECKING, Any

from campaign_autoscaler.planning import SpecError

if TYPE_CHECKING:
    from campaign_autoscaler.planning import CampaignSpec
    from campaign_autoscaler.planview import EventManifest


class InputFileError(ValueError):
    """A file given on the command line cannot be read as text."""


def _read_text(path: str, what: str = "file", missing_hint: str = "") -> str:
    """The UTF-8 text of `path` (`-`: standard input); InputFileError naming the path and the problem."""
    if path == "-":
        binary = getattr(sys.stdin, "buffer", None)  # absent when stdin was replaced by a text stream
        return _decoded(binary.read(), "standard input") if binary is not None else sys.stdin.read()
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise InputFileError(f"{path}: no such {what}{missing_hint}") from None
    except OSError as err:
        raise InputFileError(f"{path}: cannot be read ({err.strerror})") from None
    if stat.S_ISDIR(mode):
        raise InputFileError(f"{path}: is a directory, not a {what}")
    if not stat.S_ISREG(mode):
        # A FIFO or a device would block the read or never end it.
        raise InputFileError(f"{path}: not a regular file")
    try:
        with open(path, "rb") as stream:
            return _decoded(stream.read(), path)
    except OSError as err:
        raise InputFileError(f"{path}: cannot be read ({err.strerror})") from None


def _decoded(data: bytes, source: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise InputFileError(
            f"{source}: not UTF-8 text (byte 0x{data[err.start]:02x} at offset {err.start})"
        ) from None


def _spec_of(event: EventManifest, metrics_namespace_label: str) -> CampaignSpec:
    """The parsed spec, validated as the operator does (its queries held to the event's namespace, or
    `default` for an event that names none); a SpecError also names the event and its file."""
    from campaign_autoscaler.planning import MetricsScope, parse_spec

    namespace = event.namespace or "default"
    scope = MetricsScope(metrics_namespace_label, namespace) if metrics_namespace_label else None
    try:
        return parse_spec(event.raw_spec, scope)
    except SpecError as err:
        raise SpecError(err.field, f"{err.message} (CampaignEvent {event.ref} in {event.source})") from None


def load_api_client(
    kubeconfig: str | None, context: str | None, *, in_cluster: bool = True, pool_size: int | None = None
) -> Any:
    """A kubernetes ApiClient: in a pod its service account (unless a kubeconfig is given), else the
    kubeconfig (`--kubeconfig`, else $KUBECONFIG or ~/.kube/config). InputFileError when none can be loaded,
    in one line naming the file and the problem."""
    import yaml
    from kubernetes import client, config

    configuration = client.Configuration()
    if pool_size is not None:
        configuration.connection_pool_maxsize = pool_size
    if in_cluster and kubeconfig is None:
        try:
            config.load_incluster_config(client_configuration=configuration)
            return client.ApiClient(configuration)
        except config.ConfigException:
            pass  # not in a pod: the kubeconfig
    path = (
        kubeconfig or os.environ.get("KUBECONFIG") or os.path.expanduser(config.KUBE_CONFIG_DEFAULT_LOCATION)
    )
    if kubeconfig is None and not os.path.exists(path.split(os.pathsep)[0]):
        raise InputFileError(
            "no cluster configuration: not running in a pod, and no kubeconfig "
            f"(--kubeconfig FILE, $KUBECONFIG or {path})"
        )
    if kubeconfig is not None:
        _read_text(kubeconfig, "kubeconfig")  # a missing, unreadable or binary file, named as such
    try:
        config.load_kube_config(config_file=kubeconfig, context=context, client_configuration=configuration)
    except (config.ConfigException, yaml.YAMLError) as err:
        detail = " ".join(str(err).split())
        raise InputFileError(f"{kubeconfig or path}: not a usable kubeconfig ({detail})") from None
    except (TypeError, ValueError, AttributeError, KeyError):
        # The client reads the document without checking its shape.
        raise InputFileError(
            f"{kubeconfig or path}: not a usable kubeconfig (expected a YAML mapping of clusters, users, "
            "contexts and current-context)"
        ) from None
    return client.ApiClient(configuration)
