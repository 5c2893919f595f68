"""/api/services/<id>/slo: a service's SLO, its SLIs, error budget and burn rates."""

from __future__ import annotations

from sqlalchemy.orm import Session

from contract.errors import NotFound
from contract.incidents import SloIn, SloOut
from contract.responses import DeletedOut
from contract.roles import Role
from db import queries
from db import slos as slo_queries
from db.models import Service
from engine.alerting.slo import SloTarget
from engine.api.context import runtime
from engine.api.routing import ApiBlueprint
from engine.store.logs import event_logger

__all__ = ["api"]

api = ApiBlueprint("slos", tag="slos")
log = event_logger("slo")


def _service(session: Session, service_id: int) -> Service:
    service = queries.get_service(session, service_id)
    if service is None:
        raise NotFound("service", service_id)
    return service


@api.route("PUT", "/api/services/<int:service_id>/slo", summary="Set a service's SLO", role=Role.OPERATOR,
           body=SloIn, ok=(200, SloOut), errors=(400, 404, 422, 503))
def put_slo(service_id: int, body: SloIn) -> SloOut:
    """Targets in percent over a rolling window of days; routed requests are counted for it from now on."""
    rt = runtime()
    with rt.sessions.begin() as session:
        service = _service(session, service_id)
        row = slo_queries.put_slo(session, service.id, body.availabilityTarget, body.latencyThresholdMs,
                                  body.latencyTarget, body.windowDays, rt.clock.now())
        target = SloTarget.of_row(service.name, row)
    rt.slos.set(target)
    log.info("SLO of %s set: %g%% over %d day(s)", target.service, target.availability_target, target.window_days,
             extra={"meta": {"service": target.service, **body.model_dump()}})
    with rt.sessions() as session:
        return rt.slos.report(session, target)


@api.route("GET", "/api/services/<int:service_id>/slo", summary="A service's SLO with its SLIs and burn rates",
           role=Role.VIEWER, ok=(200, SloOut), errors=(404, 503))
def get_slo(service_id: int) -> SloOut:
    """SLIs and error budget over the SLO's window; burn rates over 5 min, 30 min, 1 h and 6 h of live counters."""
    rt = runtime()
    with rt.sessions() as session:
        service = _service(session, service_id)
        row = slo_queries.get_slo(session, service.id)
        if row is None:
            raise NotFound("SLO of service", service_id)
        return rt.slos.report(session, SloTarget.of_row(service.name, row))


@api.route("DELETE", "/api/services/<int:service_id>/slo", summary="Remove a service's SLO", role=Role.OPERATOR,
           ok=(200, DeletedOut), errors=(404, 503))
def delete_slo(service_id: int) -> DeletedOut:
    """Its counting stops; the minutes already counted are kept until they are older than the longest window."""
    rt = runtime()
    with rt.sessions.begin() as session:
        service = _service(session, service_id)
        if not slo_queries.delete_slo(session, service.id):
            raise NotFound("SLO of service", service_id)
    with rt.sessions() as session:
        rt.slos.load(session)
    log.info("SLO of %s removed", service.name, extra={"meta": {"service": service.name}})
    return DeletedOut(message=f"SLO of {service.name} removed", id=service_id)
