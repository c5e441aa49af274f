"""The routes that describe the API rather than serve objects: `/version`, discovery (`/api`, `/apis`, group
versions) and OpenAPI (`/openapi/v2`, `/openapi/v3`), each a document from meshd.api.discovery or
meshd.api.openapi."""

from __future__ import annotations

import asyncio
import json
from functools import cache
from importlib import metadata

from aiohttp import web

from meshd.api import discovery, openapi, status


@cache
def _meshd_version() -> str:
    try:
        return metadata.version("meshd")
    except metadata.PackageNotFoundError:
        return "unknown"


def _json(document: object, *, content_type: str = "application/json") -> web.Response:
    return web.Response(body=json.dumps(document, separators=(",", ":")).encode(),
                        headers={"Content-Type": content_type})


async def version(request: web.Request) -> web.Response:
    return _json(discovery.version_info(await asyncio.to_thread(_meshd_version)))  # reads package metadata once


async def core(request: web.Request) -> web.Response:
    if discovery.wants_aggregated(request.headers.get("Accept", "")):
        return _json(discovery.aggregated(core=True), content_type=discovery.AGGREGATED)
    return _json(discovery.api_versions(request.host))


async def groups(request: web.Request) -> web.Response:
    if discovery.wants_aggregated(request.headers.get("Accept", "")):
        return _json(discovery.aggregated(core=False), content_type=discovery.AGGREGATED)
    return _json(discovery.api_group_list())


async def core_version(request: web.Request) -> web.Response:
    return _resources("", request.match_info["version"])


async def group_version(request: web.Request) -> web.Response:
    return _resources(request.match_info["group"], request.match_info["version"])


def _resources(group: str, version: str) -> web.Response:
    document = discovery.api_resource_list(group, version)
    if document is None:
        return status.response(404, "the server could not find the requested resource")
    return _json(document)


def _accepts_json(accept: str) -> bool:
    kinds = [media.split(";")[0].strip() for media in accept.split(",")]
    return not accept.strip() or any(k in ("application/json", "*/*", "application/*") for k in kinds)


async def openapi_v2(request: web.Request) -> web.Response:
    """The swagger document as JSON; a client asking for protobuf only (client-go) gets the short protobuf one."""
    accept = request.headers.get("Accept", "")
    if openapi.SWAGGER_PROTOBUF in accept and not _accepts_json(accept):
        return web.Response(body=openapi.swagger_protobuf(), headers={"Content-Type": openapi.SWAGGER_PROTOBUF_TYPE})
    if not _accepts_json(accept):
        return status.response(406, "the OpenAPI v2 document is served as application/json and protobuf only")
    return _json(openapi.swagger())


async def openapi_v3_index(request: web.Request) -> web.Response:
    return _json(openapi.v3_index())


async def openapi_v3(request: web.Request) -> web.Response:
    document = openapi.v3_document(request.match_info["path"])
    if document is None:
        return status.response(404, "the server could not find the requested resource")
    return _json(document)


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/version", version)
    router.add_get("/api", core)
    router.add_get("/apis", groups)
    router.add_get("/api/{version}", core_version)
    router.add_get("/apis/{group}/{version}", group_version)
    router.add_get("/openapi/v2", openapi_v2)
    router.add_get("/openapi/v3", openapi_v3_index)
    router.add_get("/openapi/v3/{path:.+}", openapi_v3)


__all__ = ["add_routes"]
