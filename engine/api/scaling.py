"""Scale-up / scale-down of managed services, autoscaler settings, the scaling overview and decision history."""

from __future__ import annotations

from contract.roles import Role
from contract.scaling import (
    AutoscalerChange,
    AutoscalerConfig,
    AutoscalerOut,
    AutoscalerSettingsOut,
    ScaleOut,
    ScalingDirection,
    ScalingEventOut,
    ScalingEventQuery,
    ScalingOut,
    ScalingServiceOut,
)
from db import queries
from db.models import ScalingEvent, Service
from engine.api.context import runtime
from engine.api.routing import ApiBlueprint
from engine.runtime import Runtime

__all__ = ["api", "scaling_out"]

api = ApiBlueprint("scaling", tag="scaling")


def _service_out(rt: Runtime, row: Service) -> ScalingServiceOut:
    count = len(row.instances)
    managed = bool(row.launch_command)
    return ScalingServiceOut(
        id=row.id, name=row.name, instanceCount=count, load=rt.traffic.in_flight(row.name), status=row.status,
        managed=managed, canScaleUp=managed and count < row.max_instances,
        canScaleDown=managed and count > row.min_instances, minInstances=row.min_instances,
        maxInstances=row.max_instances,
        autoscaler=None if row.autoscaler is None else AutoscalerSettingsOut.of(AutoscalerConfig(**row.autoscaler)),
    )


def scaling_out(rt: Runtime) -> ScalingOut:
    """SystemMetrics.scaling: instances per service with load and what scaling may do now."""
    with rt.sessions() as session:
        services = [_service_out(rt, r) for r in queries.list_services(session)]
    return ScalingOut(totalInstances=sum(s.instanceCount for s in services), services=services)


def _event_out(e: ScalingEvent) -> ScalingEventOut:
    return ScalingEventOut(
        id=e.id, serviceName=e.service_name, direction=ScalingDirection(e.direction), fromCount=e.from_count,
        toCount=e.to_count, reason=e.reason, source=e.source, metric=e.metric, metricValue=e.metric_value,
        target=e.target, timestamp=e.timestamp.isoformat(),
    )


@api.route("POST", "/api/services/<int:service_id>/scale-up", summary="Start one more instance (managed services)",
           role=Role.OPERATOR, ok=(200, ScaleOut), errors=(404, 409, 503))
def scale_up(service_id: int) -> ScaleOut:
    """Healthy before it takes traffic; 409 at maxInstances, for an external service, or while another action runs."""
    return runtime().scaling.scale_up(service_id)


@api.route("POST", "/api/services/<int:service_id>/scale-down", summary="Drain and stop one instance",
           role=Role.OPERATOR, ok=(200, ScaleOut), errors=(404, 409, 503))
def scale_down(service_id: int) -> ScaleOut:
    """Out of the balancer, in-flight requests finish, then SIGTERM; 409 at minInstances or external."""
    return runtime().scaling.scale_down(service_id)


@api.route("PUT", "/api/services/<int:service_id>/autoscaler", summary="Autoscaler on/off and its settings",
           role=Role.OPERATOR, body=AutoscalerChange, ok=(200, AutoscalerOut), errors=(404, 409, 422, 503))
def set_autoscaler(service_id: int, body: AutoscalerChange) -> AutoscalerOut:
    """The HPA settings (any subset; the rest keep their values) and min/max instances."""
    return runtime().scaling.configure(service_id, body)


@api.route("GET", "/api/scaling", summary="Instances, load and scaling room per service", role=Role.VIEWER,
           ok=(200, ScalingOut), errors=(503,))
def scaling() -> ScalingOut:
    """SystemMetrics.scaling alone."""
    return scaling_out(runtime())


@api.route("GET", "/api/scaling/events", summary="Scaling decisions, newest first", role=Role.VIEWER,
           query=ScalingEventQuery, ok=(200, list[ScalingEventOut]), errors=(503,))
def events(query: ScalingEventQuery) -> list[ScalingEventOut]:
    """Every decision, including 'no change', with its reason, metric value and target."""
    with runtime().sessions() as session:
        return [_event_out(e) for e in queries.scaling_event_rows(session, query.service, query.limit)]
