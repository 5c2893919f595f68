"""Scale-up / scale-down of managed services, autoscaler settings, the scaling overview and decision history."""

from __future__ import annotations

from typing import Any

from flask import jsonify
from flask.typing import ResponseReturnValue
from sqlalchemy import select

from contract.roles import Role
from contract.scaling import AutoscalerChange, AutoscalerOut, ScaleOut, ScalingEventOut, ScalingEventQuery, ScalingOut
from db.models import ScalingEvent, Service
from engine.api.context import runtime
from engine.api.routing import ApiBlueprint
from engine.runtime import Runtime
from engine.scaling.manager import autoscaler_json

__all__ = ["api", "scaling_json"]

api = ApiBlueprint("scaling", tag="scaling")


def scaling_json(rt: Runtime) -> dict[str, Any]:
    """SystemMetrics.scaling: instances per service with load and what scaling may do now."""
    with rt.sessions() as session:
        rows = session.scalars(select(Service).order_by(Service.id)).all()
        services = []
        for r in rows:
            count = len(r.instances)
            services.append({
                "id": r.id, "name": r.name, "instanceCount": count, "load": rt.traffic.in_flight(r.name),
                "status": r.status, "managed": bool(r.launch_command),
                "canScaleUp": bool(r.launch_command) and count < r.max_instances,
                "canScaleDown": bool(r.launch_command) and count > r.min_instances,
                "minInstances": r.min_instances, "maxInstances": r.max_instances,
                "autoscaler": autoscaler_json(r.autoscaler),
            })
    return {"totalInstances": sum(s["instanceCount"] for s in services), "services": services}


def _event_json(e: ScalingEvent) -> dict[str, Any]:
    return {"id": e.id, "serviceName": e.service_name, "direction": e.direction, "fromCount": e.from_count,
            "toCount": e.to_count, "reason": e.reason, "source": e.source, "metric": e.metric,
            "metricValue": e.metric_value, "target": e.target, "timestamp": e.timestamp.isoformat()}


@api.route("POST", "/api/services/<int:service_id>/scale-up", summary="Start one more instance (managed services)",
           role=Role.OPERATOR, ok=(200, ScaleOut), errors=(404, 409, 503))
def scale_up(service_id: int) -> ResponseReturnValue:
    """Healthy before it takes traffic; 409 at maxInstances, for an external service, or while another action runs."""
    return jsonify(runtime().scaling.scale_up(service_id))


@api.route("POST", "/api/services/<int:service_id>/scale-down", summary="Drain and stop one instance",
           role=Role.OPERATOR, ok=(200, ScaleOut), errors=(404, 409, 503))
def scale_down(service_id: int) -> ResponseReturnValue:
    """Out of the balancer, in-flight requests finish, then SIGTERM; 409 at minInstances or external."""
    return jsonify(runtime().scaling.scale_down(service_id))


@api.route("PUT", "/api/services/<int:service_id>/autoscaler", summary="Autoscaler on/off and its settings",
           role=Role.OPERATOR, body=AutoscalerChange, ok=(200, AutoscalerOut), errors=(404, 409, 422, 503))
def set_autoscaler(service_id: int, body: AutoscalerChange) -> ResponseReturnValue:
    """The HPA settings (any subset; the rest keep their values) and min/max instances."""
    fields = body.model_dump(exclude={"enabled", "minInstances", "maxInstances"}, exclude_none=True)
    return jsonify(runtime().scaling.configure(service_id, body.enabled, fields, body.minInstances,
                                               body.maxInstances))


@api.route("GET", "/api/scaling", summary="Instances, load and scaling room per service", role=Role.VIEWER,
           ok=(200, ScalingOut), errors=(503,))
def scaling() -> ResponseReturnValue:
    """SystemMetrics.scaling alone."""
    return jsonify(scaling_json(runtime()))


@api.route("GET", "/api/scaling/events", summary="Scaling decisions, newest first", role=Role.VIEWER,
           query=ScalingEventQuery, ok=(200, list[ScalingEventOut]), errors=(503,))
def events(query: ScalingEventQuery) -> ResponseReturnValue:
    """Every decision, including 'no change', with its reason, metric value and target."""
    stmt = select(ScalingEvent).order_by(ScalingEvent.id.desc()).limit(query.limit)
    if query.service:
        stmt = stmt.where(ScalingEvent.service_name == query.service)
    with runtime().sessions() as session:
        return jsonify([_event_json(e) for e in session.scalars(stmt)])
