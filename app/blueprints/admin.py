"""Admin routes: users and invites. An admin's browser session only: a
logged-out caller gets 401, a bearer token 403 `session_required` (as token
management: a leaked token must not run the install), anyone else 403
`forbidden`."""

from __future__ import annotations

from flask_openapi3 import APIBlueprint, Tag

from app.errors import Forbidden
from app.services import admin, invites
from app.web.schemas.admin import (
    AdminUserListOut,
    AdminUserOut,
    InviteCreate,
    InviteCreatedOut,
    InviteListOut,
    InviteOut,
    InvitePath,
    PasswordSet,
    UserPatch,
    UserPath,
)
from app.web.schemas.common import ErrorOut, error_responses

from .auth import _require_session_user

bp = APIBlueprint(
    "admin",
    __name__,
    url_prefix="/admin",
    abp_tags=[Tag(name="admin")],
    abp_responses=error_responses(400, 401, 403, 413),
)


def require_admin():
    user = _require_session_user()
    if not user.is_admin:
        raise Forbidden()
    return user


@bp.get("/users", responses={200: AdminUserListOut})
def list_users():
    """Every account, with images today and this month, cost this month and
    quota (each limit: override, default, effective; null is unlimited)."""
    rows = admin.list_users(require_admin())
    return AdminUserListOut(items=[AdminUserOut.of(row) for row in rows]).model_dump(mode="json")


@bp.patch("/users/<int:user_id>", responses={200: AdminUserOut, 404: ErrorOut, 409: ErrorOut})
def update_user(path: UserPath, body: UserPatch):
    """Promote or demote, disable or enable, set quota overrides (null: the
    default). Disabling ends the user's sessions and revokes their tokens.
    The last admin can't be demoted or disabled (409 `last_admin`)."""
    row = admin.update_user(require_admin(), path.user_id, **body.changes())
    return AdminUserOut.of(row).model_dump(mode="json")


@bp.post("/users/<int:user_id>/password", responses={200: AdminUserOut, 404: ErrorOut})
def set_password(path: UserPath, body: PasswordSet):
    """Set a new password for the user; their sessions end and their API
    tokens are revoked."""
    row = admin.set_password(require_admin(), path.user_id, body.password)
    return AdminUserOut.of(row).model_dump(mode="json")


@bp.delete("/users/<int:user_id>", responses={204: None, 404: ErrorOut, 409: ErrorOut})
def delete_user(path: UserPath):
    """Delete the user with their conversations, tokens and images (a file
    stays while another user has the same picture). Not yourself, and not
    the last admin (409)."""
    admin.delete_user(require_admin(), path.user_id)
    return "", 204


@bp.post("/invites", responses={201: InviteCreatedOut})
def create_invite(body: InviteCreate):
    """An invite code for SIGNUP_POLICY=invite. The code is shown once."""
    invite, code = invites.create(require_admin(), body.uses, body.expires_in_days)
    out = InviteCreatedOut(**InviteOut.of(invite).model_dump(), code=code, uses=invite.uses_total)
    return out.model_dump(mode="json"), 201


@bp.get("/invites", responses={200: InviteListOut})
def list_invites():
    """The newest invites (never their codes), with how many uses are left."""
    require_admin()
    items = [InviteOut.of(invite) for invite in invites.list_all()]
    return InviteListOut(items=items).model_dump(mode="json")


@bp.delete("/invites/<code>", responses={204: None, 404: ErrorOut})
def revoke_invite(path: InvitePath):
    """Revoke an invite, by its code or its id; it stops working at once."""
    require_admin()
    invites.revoke(path.code)
    return "", 204
