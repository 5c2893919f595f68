"""/api/services: the registry's CRUD."""

from __future__ import annotations

from datetime import datetime

from flask import Response
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from contract.errors import Conflict, NotFound, ProcessError, ValidationFailed
from contract.requests import ServiceCreate, ServiceQuery, ServiceUpdate
from contract.responses import DeletedOut, InstanceOut, ServiceOut
from contract.roles import Role
from contract.states import HealthState
from db import fleet, queries
from db.models import Instance, Service
from engine.api.auth import authorize
from engine.api.context import runtime
from engine.api.routing import ApiBlueprint, serialize
from engine.fleet.registry import spec_of
from engine.security.ssrf import refusal
from engine.store.logs import event_logger

__all__ = ["api", "instance_out", "service_out"]

api = ApiBlueprint("services", tag="services")
log = event_logger("registry")


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def instance_out(i: Instance) -> InstanceOut:
    """One instance row as the API shows it."""
    return InstanceOut(id=i.id, url=i.url, status=HealthState(i.status), lastHealthCheck=_iso(i.last_health_check),
                       latencyMs=i.latency_ms, weight=i.weight, lastError=i.last_error)


def service_out(service: Service, load: int) -> ServiceOut:
    """A service row with its instances; `load` is its requests in flight; `url` is its first instance's."""
    return ServiceOut(
        id=service.id,
        name=service.name,
        url=service.instances[0].url if service.instances else None,
        status=HealthState(service.status),
        instanceCount=len(service.instances),
        load=load,
        lastHealthCheck=_iso(service.last_health_check),
        managed=service.managed,
        healthPath=service.health_path,
        metricsPath=service.metrics_path,
        weight=service.weight,
        createdAt=_iso(service.created_at),
        instances=[instance_out(i) for i in service.instances],
    )


def row_out(row: fleet.ServiceRow, load: int) -> ServiceOut:
    """A service read by db.fleet as the API shows it (the same fields as service_out)."""
    return ServiceOut(
        id=row.id, name=row.name, url=row.instances[0].url if row.instances else None,
        status=HealthState(row.status), instanceCount=len(row.instances), load=load,
        lastHealthCheck=_iso(row.last_health_check), managed=row.managed, healthPath=row.health_path,
        metricsPath=row.metrics_path, weight=row.weight, createdAt=_iso(row.created_at),
        instances=[InstanceOut(id=i.id, url=i.url, status=HealthState(i.status),
                               lastHealthCheck=_iso(i.last_health_check), latencyMs=i.latency_ms, weight=i.weight,
                               lastError=i.last_error) for i in row.instances],
    )


def _out(service: Service) -> ServiceOut:
    return service_out(service, runtime().traffic.in_flight(service.name))


def _check_hosts(field: str, urls: list[str], indexed: bool) -> None:
    allowlist = runtime().settings.instance_allowlist
    bad = [
        {"field": f"{field}[{n}]" if indexed else field, "message": reason}
        for n, url in enumerate(urls)
        if (reason := refusal(url, allowlist)) is not None
    ]
    if bad:
        raise ValidationFailed(bad)


def _get(session: Session, service_id: int) -> Service:
    service = queries.get_service(session, service_id)
    if service is None:
        raise NotFound("service", service_id)
    return service


def _name_taken(session: Session, name: str, other_than: int | None = None) -> None:
    existing = queries.service_id_named(session, name)
    if existing is not None and existing != other_than:
        raise Conflict(f"a service named {name!r} already exists", [{"field": "name", "message": "taken"}])


TOTAL_HEADER = "X-Total-Count"


@api.route("GET", "/api/services", summary="List services with their instances: filtered, ordered, paged",
           role=Role.VIEWER, query=ServiceQuery, ok=(200, list[ServiceOut]), errors=(503,),
           headers=((TOTAL_HEADER, "services the filters match, before limit and offset"),))
def list_services(query: ServiceQuery) -> Response:
    """The services matching status and name, in sort order; without limit all of them (as before paging)."""
    rt = runtime()
    wanted = fleet.FleetFilter(query.statuses(), query.name)
    with rt.sessions() as session:
        rows = fleet.service_page(session, wanted, query.sort.value, query.limit, query.offset)
        paged = query.limit is not None or query.offset > 0
        total = fleet.count_services(session, wanted) if paged else len(rows)
    response = serialize([row_out(r, rt.traffic.in_flight(r.name)) for r in rows])
    response.headers[TOTAL_HEADER] = str(total)
    return response


@api.route("GET", "/api/services/<int:service_id>", summary="One service", role=Role.VIEWER,
           ok=(200, ServiceOut), errors=(404, 503))
def get_service(service_id: int) -> ServiceOut:
    """One service."""
    with runtime().sessions() as session:
        return _out(_get(session, service_id))


@api.route("POST", "/api/services", summary="Register a service", role=Role.OPERATOR, body=ServiceCreate,
           ok=(201, ServiceOut), errors=(409, 503))
def create_service(body: ServiceCreate) -> ServiceOut:
    """Register a service with one or more instances."""
    if body.launchCommand is not None:
        return _create_managed(body)
    specs = body.instance_specs()
    urls = list(specs)
    if not urls:
        raise ValidationFailed([{"field": "url", "message": "give url or instances (at least one instance)"}])
    if body.url:
        _check_hosts("url", [body.url], indexed=False)
    _check_hosts("instances", [i if isinstance(i, str) else i.url for i in body.instances or []], indexed=True)
    rt = runtime()
    try:
        with rt.sessions.begin() as session:
            _name_taken(session, body.name)
            service = Service(
                name=body.name, health_path=body.healthPath, metrics_path=body.metricsPath,
                weight=body.weight, managed=False, status="unknown",
                instances=[Instance(url=u, weight=w or 1) for u, w in specs.items()],
            )
            session.add(service)
            session.flush()
            result = _out(service)
            spec = spec_of(service)
    except IntegrityError as exc:
        raise Conflict(f"a service named {body.name!r} already exists") from exc
    rt.registry.put(spec)  # a new service has no SLO and changes no other: the rest of the snapshot stands
    log.info("service %s registered with %d instance(s)", body.name, len(urls),
             extra={"meta": {"service": body.name, "instances": urls}})
    return result


def _create_managed(body: ServiceCreate) -> ServiceOut:
    """A service whose instances the engine runs from launchCommand (admin: it is a command on this host)."""
    authorize(Role.ADMIN)
    if body.url or body.instances:
        raise ValidationFailed([{"field": "launchCommand", "message": "give a launch command or URLs, not both"}])
    if body.minInstances > body.maxInstances:
        raise ValidationFailed([{"field": "minInstances", "message": "must not exceed maxInstances"}])
    rt = runtime()
    try:
        with rt.sessions.begin() as session:
            _name_taken(session, body.name)
            service = Service(
                name=body.name, health_path=body.healthPath, metrics_path=body.metricsPath, weight=body.weight,
                managed=True, status="unknown", launch_command=body.launchCommand,
                min_instances=body.minInstances, max_instances=body.maxInstances,
            )
            session.add(service)
            session.flush()
            service_id = service.id
    except IntegrityError as exc:
        raise Conflict(f"a service named {body.name!r} already exists") from exc
    try:
        rt.fleet.start(service_id, body.minInstances)
    except ProcessError as exc:
        with rt.sessions.begin() as session:
            queries.delete_service(session, service_id)
        rt.reload_registry()
        raise ValidationFailed([{"field": "launchCommand", "message": f"did not start: {exc}"[:300]}]) from exc
    log.info("managed service %s registered: %d instance(s) started", body.name, body.minInstances,
             extra={"meta": {"service": body.name, "minInstances": body.minInstances}})
    with rt.sessions() as session:
        return _out(_get(session, service_id))


@api.route("PUT", "/api/services/<int:service_id>", summary="Change a service", role=Role.OPERATOR,
           body=ServiceUpdate, ok=(200, ServiceOut), errors=(409, 503))
def update_service(service_id: int, body: ServiceUpdate) -> ServiceOut:
    """Change a service's name, paths, weight or (unmanaged only) instance URLs."""
    new_specs = body.instance_specs()
    if new_specs is not None:
        _check_hosts("instances", list(new_specs), indexed=True)
    rt = runtime()
    changed = body.model_dump(exclude_unset=True)
    try:
        with rt.sessions.begin() as session:
            service = _get(session, service_id)
            if body.name is not None:
                _name_taken(session, body.name, other_than=service_id)
                service.name = body.name
            if body.healthPath is not None:
                service.health_path = body.healthPath
            if "metricsPath" in changed:
                service.metrics_path = body.metricsPath
            if body.weight is not None:
                service.weight = body.weight
            if new_specs is not None:
                if service.managed:
                    raise Conflict("a managed service's instances change through scale-up and scale-down",
                                   [{"field": "instances", "message": "managed"}])
                keep = [i for i in service.instances if i.url in new_specs]
                for i in keep:
                    i.weight = new_specs[i.url] or i.weight
                have = {i.url for i in keep}
                added = [Instance(url=u, weight=w or 1) for u, w in new_specs.items() if u not in have]
                service.instances = keep + added
            session.flush()
            result = _out(service)
    except IntegrityError as exc:
        raise Conflict("the change clashes with another service") from exc
    rt.reload_registry()
    if result.managed and body.name is not None:
        rt.fleet.rename(service_id, body.name)  # its running processes are the renamed service's
    log.info("service %s updated: %s", result.name, ", ".join(changed) or "nothing",
             extra={"meta": {"service": result.name, "changed": changed}})
    return result


@api.route("DELETE", "/api/services/<int:service_id>", summary="Deregister a service", role=Role.OPERATOR,
           ok=(200, DeletedOut), errors=(503,))
def delete_service(service_id: int) -> DeletedOut:
    """Deregister a service; a managed one's processes are stopped."""
    rt = runtime()
    with rt.sessions.begin() as session:
        service = _get(session, service_id)
        name, managed = service.name, service.managed
        session.delete(service)
    rt.reload_registry()
    if managed:
        rt.fleet.forget(name)
    log.info("service %s deleted", name, extra={"meta": {"service": name}})
    return DeletedOut(message=f"service {name} deleted", id=service_id)
