"""The OpenAPI 3.1 document of the JSON API (bot/web/api.py), built here as data: the states,
grades, colours and filter fields come from the models, so the document changes with them."""

from __future__ import annotations

from typing import Any

from models.catalog import DefectType, Grade
from models.dashboard.activations import ACTIVATION_KEYS
from models.dashboard.ledger import FILTER_KEYS, MAX_PER_PAGE, PER_PAGE
from models.emergency import ActivationStatus, PlanKind
from models.hazard import Status
from models.org import RiskColor

VERSION = "1.0.0"
Json = dict[str, Any]


def _ref(name: str) -> Json:
    return {"$ref": f"#/components/schemas/{name}"}


def _nullable(schema: Json) -> Json:
    return {"oneOf": [schema, {"type": "null"}]}


def _time(description: str = "") -> Json:
    out: Json = {"type": ["string", "null"], "format": "date-time"}
    if description:
        out["description"] = description
    return out


def _query(name: str, description: str, schema: Json) -> Json:
    return {"name": name, "in": "query", "required": False, "description": description,
            "schema": schema}


def _day(name: str, what: str) -> Json:
    return _query(name, f"{what} on or {'after' if name == 'from' else 'before'} this day "
                        "(the plant's time zone)", {"type": "string", "format": "date"})


PAGING_PARAMETERS = [
    _query("limit", f"Items a page (default {PER_PAGE}).",
           {"type": "integer", "minimum": 1, "maximum": MAX_PER_PAGE, "default": PER_PAGE}),
    _query("cursor", "The `next_cursor` of the page before; opaque.", {"type": "string"}),
]
FILED = [s.value for s in Status if s is not Status.DRAFT]
TICKET_PARAMETERS = {
    "area": _query("area", "An area's code.", {"type": "string"}),
    "category": _query("category", "A category's code (H01, F02, …).", {"type": "string"}),
    "grade": _query("grade", "一般 or 重大.",
                    {"type": "string", "enum": [g.value for g in Grade]}),
    "status": _query("status", "A state.", {"type": "string", "enum": FILED}),
    "owner": _query("owner", "The owner's user id.", {"type": "string"}),
    "from": _day("from", "Filed"),
    "to": _day("to", "Filed"),
    "overdue": _query("overdue", "Active and past the deadline (true), or not (false).",
                      {"type": "boolean"}),
    "q": _query("q", "Words of the description, or a ticket's number (HZ-…).",
                {"type": "string", "maxLength": 50}),
}
ACTIVATION_PARAMETERS = {
    "drill": _query("drill", "Drills only (true) or real emergencies only (false).",
                    {"type": "boolean"}),
    "status": _query("status", "A state.",
                     {"type": "string", "enum": [s.value for s in ActivationStatus]}),
    "from": _day("from", "Raised"),
    "to": _day("to", "Raised"),
}


def _errors(*codes: int) -> Json:
    names = {400: "BadQuery", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound"}
    return {str(code): {"$ref": f"#/components/responses/{names[code]}"} for code in codes}


def _ok(description: str, schema: str) -> Json:
    return {"description": description,
            "content": {"application/json": {"schema": _ref(schema)}}}


def _page(item: str) -> Json:
    return {"type": "object", "required": ["items", "next_cursor"],
            "properties": {"items": {"type": "array", "items": _ref(item)},
                           "next_cursor": {"type": ["string", "null"],
                                           "description": "The next page's `cursor`; null on "
                                                          "the last page."}}}


def _code_name() -> Json:
    return _nullable({"type": "object", "required": ["code", "name"],
                      "properties": {"code": {"type": "string"}, "name": {"type": "string"}}})


SCHEMAS: Json = {
    "Error": {"type": "object", "required": ["error"], "properties": {
        "error": {"type": "string", "description": "What is wrong, for a person to read."},
        "field": {"type": "string", "description": "The query parameter at fault (400)."}}},
    "Ticket": {"type": "object", "required": [
        "id", "number", "status", "status_label", "area", "category", "grade", "description",
        "reporter", "owner", "reviewer", "created_at", "deadline", "closed_at", "overdue",
        "reports"], "properties": {
        "id": {"type": "integer"},
        "number": {"type": ["string", "null"], "examples": ["HZ-20261129-0007"]},
        "status": {"type": "string", "enum": FILED},
        "status_label": {"type": "string", "examples": ["整改中"]},
        "area": _code_name(), "category": _code_name(),
        "grade": {"type": "string", "enum": [g.value for g in Grade]},
        "defect_type": {"type": "string", "enum": [d.value for d in DefectType]},
        "description": {"type": "string"},
        "reporter": {"type": "string", "description": "A user id of the roster."},
        "owner": {"type": ["string", "null"]}, "reviewer": {"type": ["string", "null"]},
        "created_at": _time(), "deadline": _time(), "closed_at": _time(),
        "overdue": {"type": "boolean", "description": "Active and past its deadline now."},
        "reports": {"type": "integer", "description": "Times reported, repeats included."}}},
    "TicketDetail": {"allOf": [_ref("Ticket"), {"type": "object", "required": [
        "photos", "checklist", "plan", "history"], "properties": {
        "photos": {"type": "object", "properties": {
            "before": {"type": "array", "items": {"type": "string"},
                       "description": "SHA-256 digests of the photos reported."},
            "after": {"type": "array", "items": {"type": "string"},
                      "description": "SHA-256 digests of the rectification's evidence."}}},
        "checklist": {"type": "object", "additionalProperties": {"type": "string"},
                      "description": "五到位: 措施, 责任, 资金, 时限, 预案."},
        "plan": {"type": "object", "additionalProperties": {"type": "string"},
                 "description": "A 重大 ticket's 治理方案."},
        "history": {"type": "array", "items": _ref("HistoryEvent")}}}]},
    "HistoryEvent": {"type": "object", "required": ["at", "actor", "action"], "properties": {
        "at": _time(), "actor": {"type": "string"},
        "action": {"type": "string", "examples": ["filed", "accepted", "closed"]},
        "words": {"type": "string", "examples": ["登记"]},
        "from": {"type": "string"}, "to": {"type": "string"}, "note": {"type": "string"}}},
    "TicketPage": _page("Ticket"),
    "Area": {"type": "object", "required": [
        "code", "name", "risk_color", "risk_status", "open_tickets"], "properties": {
        "code": {"type": "string"}, "name": {"type": "string"},
        "risk_color": {"type": "string", "enum": [c.value for c in RiskColor],
                       "description": "Inherent risk from the assessment (四色)."},
        "risk_status": {"type": ["string", "null"], "enum": ["高", "中", "低", None],
                        "description": "Dynamic status from the area's history; null before "
                                       "the rules first ran."},
        "risk_reason": {"type": "string"}, "risk_status_at": _time(),
        "open_tickets": {"type": "integer"}, "overdue_tickets": {"type": "integer"}}},
    "AreaList": {"type": "object", "required": ["items"],
                 "properties": {"items": {"type": "array", "items": _ref("Area")}}},
    "Responder": {"type": "object", "required": ["user", "answer", "answered_at",
                                                 "seconds_to_answer"], "properties": {
        "user": {"type": "string"}, "deputy_for": {"type": ["string", "null"]},
        "answer": {"type": ["string", "null"], "enum": ["收到", "无法到场", None]},
        "notified_at": _time(), "answered_at": _time(),
        "seconds_to_answer": {"type": ["number", "null"], "description":
                              "From the activation's start to the answer."},
        "late": {"type": "boolean", "description": "Answered after the close."}}},
    "Activation": {"type": "object", "required": [
        "id", "plan", "level", "area", "drill", "status", "responders"], "properties": {
        "id": {"type": "integer"}, "label": {"type": "string"},
        "plan": _nullable({"type": "object", "properties": {
            "code": {"type": "string"}, "name": {"type": "string"},
            "kind": {"type": "string", "enum": [k.value for k in PlanKind]}}}),
        "level": {"type": ["string", "null"]}, "area": _code_name(),
        "drill": {"type": "boolean"},
        "status": {"type": "string", "enum": [s.value for s in ActivationStatus]},
        "raised_by": {"type": "string"}, "commander": {"type": ["string", "null"]},
        "created_at": _time(), "activated_at": _time(), "closed_at": _time(),
        "responders": {"type": "array", "items": _ref("Responder")}}},
    "ActivationPage": _page("Activation"),
}


def _error(description: str) -> Json:
    return {"description": description,
            "content": {"application/json": {"schema": _ref("Error")}}}


def document() -> Json:
    ticket_id = {"name": "id", "in": "path", "required": True, "schema": {"type": "integer"}}
    return {
        "openapi": "3.1.0",
        "info": {"title": "SafetyBot API", "version": VERSION, "description":
                 "Hazards (隐患), areas and emergency activations for the plant's other "
                 "systems. Times are ISO 8601 with the plant's offset. Lists are newest first "
                 "and paged: pass a page's `next_cursor` as `cursor` until it is null."},
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "paths": {
            "/api/v1/tickets": {"get": {
                "operationId": "listTickets", "summary": "Tickets, filtered and paged",
                "parameters": [TICKET_PARAMETERS[k] for k in FILTER_KEYS] + PAGING_PARAMETERS,
                "responses": {"200": _ok("A page of tickets", "TicketPage"),
                              **_errors(400, 401)}}},
            "/api/v1/tickets/{id}": {"get": {
                "operationId": "getTicket", "summary": "One ticket with its photos and record",
                "parameters": [ticket_id],
                "responses": {"200": _ok("The ticket", "TicketDetail"),
                              **_errors(401, 404)}}},
            "/api/v1/areas": {"get": {
                "operationId": "listAreas",
                "summary": "Every area with its inherent and dynamic risk",
                "responses": {"200": _ok("The areas", "AreaList"), **_errors(401)}}},
            "/api/v1/activations": {"get": {
                "operationId": "listActivations",
                "summary": "Emergency activations and drills, with their responders",
                "parameters": [ACTIVATION_PARAMETERS[k] for k in ACTIVATION_KEYS]
                + PAGING_PARAMETERS,
                "responses": {"200": _ok("A page of activations", "ActivationPage"),
                              **_errors(400, 401)}}},
            "/api/v1/openapi.json": {"get": {
                "operationId": "openapi", "summary": "This document", "security": [],
                "responses": {"200": {"description": "The OpenAPI document",
                                      "content": {"application/json": {}}}}}},
        },
        "components": {
            "securitySchemes": {"bearer": {
                "type": "http", "scheme": "bearer", "description":
                "A token from `safetybot api-token create NAME`; read-only unless made with "
                "--write (a method that changes something answers 403 to a read-only token)."}},
            "schemas": SCHEMAS,
            "responses": {
                "BadQuery": _error("A bad query: `field` names the parameter (a bad date, an "
                                   "unknown field, a bad cursor, a limit out of range)"),
                "Unauthorized": _error("No token, or an unknown or revoked one"),
                "Forbidden": _error("The token may not do this (it reads only)"),
                "NotFound": _error("No such thing"),
            },
        },
    }
