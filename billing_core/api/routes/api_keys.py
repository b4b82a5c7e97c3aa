"""API keys: create (the key is shown once), list, revoke. Admin only."""

from typing import Annotated

from fastapi import APIRouter, Depends
from starlette.responses import Response

from billing_core import queries
from billing_core.api import models as m
from billing_core.api.auth import Caller, KeyVerifier, allow, allow_write
from billing_core.api.idempotency import run
from billing_core.api.routing import ADMIN, Limit, PathId, StartingAfter, answer, page, read, responses
from billing_core.context import BillingContext
from billing_core.services.create_api_key import create_api_key
from billing_core.services.revoke_api_key import revoke_api_key

router = APIRouter(prefix="/v1", tags=["api keys"])

Admin = Annotated[Caller, Depends(allow(*ADMIN))]
AdminWrite = Annotated[Caller, Depends(allow_write(*ADMIN))]


@router.post(
    "/api_keys",
    status_code=201,
    response_model=m.ApiKeyCreated,
    summary="Create an api key",
    responses=responses(write=True),
)
def create(body: m.ApiKeyCreate, caller: AdminWrite) -> Response:
    """The response carries the key (`rk_<id>_<secret>`) this once; only its hash is stored."""

    def action(ctx: BillingContext) -> m.ApiKeyCreated:
        created = create_api_key(ctx, name=body.name, role=body.role)
        return m.ApiKeyCreated(
            id=created.id,
            name=created.name,
            role=created.role.value,
            created_at=created.created_at,
            revoked_at=None,
            key=created.key,
        )

    return run(caller, action, status_code=201)


@router.get("/api_keys", response_model=m.ApiKeyList, summary="List api keys", responses=responses())
def list_(caller: Admin, limit: Limit = 10, starting_after: StartingAfter = None) -> Response:
    rows = read(caller, lambda conn: queries.list_api_keys(conn, limit=limit, starting_after=starting_after))
    return page(m.ApiKeyList, m.ApiKey, rows)


@router.get(
    "/api_keys/{api_key_id}", response_model=m.ApiKey, summary="Get an api key", responses=responses()
)
def get(api_key_id: PathId, caller: Admin) -> Response:
    return answer(m.ApiKey.model_validate(read(caller, lambda conn: queries.get_api_key(conn, api_key_id))))


@router.post(
    "/api_keys/{api_key_id}/revoke",
    response_model=m.ApiKey,
    summary="Revoke an api key",
    responses=responses(write=True),
)
def revoke(api_key_id: PathId, caller: AdminWrite) -> Response:
    """Requests with the key are refused from now on (by every server within a second)."""

    def action(ctx: BillingContext) -> m.ApiKey:
        revoke_api_key(ctx, api_key_id=api_key_id)
        with ctx.read() as conn:
            return m.ApiKey.model_validate(queries.get_api_key(conn, api_key_id))

    response = run(caller, action)
    verifier: KeyVerifier = caller.request.app.state.keys
    verifier.forget(api_key_id)
    return response
