"""What the fake API knows of actions: the catalogue it accepts, and the mix the generator draws."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Literal

import msgspec

EntityType = Literal["user", "channel", "file", "app", "workspace", "enterprise"]

#: The day the Audit Logs API starts having data; also the fake server's default ``enabled_at``.
AUDIT_LOGS_EPOCH = datetime(2018, 3, 1, tzinfo=timezone.utc)

# Real action names, grouped the way the `actions` endpoint groups them. Filters accept every name
# here, including the ones the generator never produces (they simply match nothing).
ACTION_CATALOGUE: dict[str, tuple[str, ...]] = {
    "workspace_or_org": (
        "workspace_created",
        "workspace_deleted",
        "organization_created",
        "organization_renamed",
        "emoji_added",
        "emoji_removed",
        "manual_export_started",
        "manual_export_completed",
        "corporate_exports_approved",
        "pref.sso_setting_changed",
        "pref.two_factor_auth_changed",
        "pref.session_duration_changed",
        "pref.file_retention_changed",
        "pref.who_can_create_public_channels",
    ),
    "user": (
        "user_created",
        "user_deactivated",
        "user_reactivated",
        "user_login",
        "user_login_failed",
        "user_logout",
        "role_change_to_admin",
        "role_change_to_owner",
        "role_change_to_user",
        "guest_created",
        "user_session_reset_by_admin",
    ),
    "file": (
        "file_downloaded",
        "file_uploaded",
        "file_shared",
        "file_public_link_created",
        "file_public_link_revoked",
        "file_downloaded_blocked",
    ),
    "channel": (
        "user_channel_join",
        "user_channel_leave",
        "guest_channel_join",
        "public_channel_created",
        "private_channel_created",
        "public_channel_archive",
        "private_channel_archive",
        "channel_renamed",
        "public_channel_converted_to_private",
        "external_shared_channel_connected",
    ),
    "app": (
        "app_installed",
        "app_uninstalled",
        "app_scopes_expanded",
        "app_approved",
        "app_restricted",
        "bot_token_upgraded",
    ),
    "workflow_builder": ("workflow_created", "workflow_published", "workflow_deleted"),
    "barrier": ("barrier_created", "barrier_updated", "barrier_deleted"),
    "message": ("message_tombstoned", "message_restored"),
}

KNOWN_ACTIONS: frozenset[str] = frozenset(name for names in ACTION_CATALOGUE.values() for name in names)


@dataclass(frozen=True)
class ActionProfile:
    """How the generator produces one action: how often, on what, and from where."""

    name: str
    entity_type: EntityType
    weight: float
    # For user entities: the actor acts on themself (login) or on someone else (role change).
    targets_self: bool = False
    # Org-level settings happen at the enterprise, everything else in the actor's workspace.
    org_level: bool = False


# The actions the generator draws from, with a realistic mix: logins and file traffic dominate,
# admin changes are rare. The order is part of the determinism contract: append only.
PROFILES: tuple[ActionProfile, ...] = (
    ActionProfile("user_login", "user", 30, targets_self=True),
    ActionProfile("user_logout", "user", 14, targets_self=True),
    ActionProfile("user_login_failed", "user", 3, targets_self=True),
    ActionProfile("file_downloaded", "file", 20),
    ActionProfile("file_uploaded", "file", 12),
    ActionProfile("file_shared", "file", 4),
    ActionProfile("user_channel_join", "channel", 8),
    ActionProfile("user_channel_leave", "channel", 3),
    ActionProfile("public_channel_created", "channel", 2),
    ActionProfile("private_channel_created", "channel", 1),
    ActionProfile("app_installed", "app", 0.6, org_level=True),
    ActionProfile("app_scopes_expanded", "app", 0.4, org_level=True),
    ActionProfile("role_change_to_admin", "user", 0.3),
    ActionProfile("user_created", "user", 0.8),
    ActionProfile("workspace_created", "workspace", 0.05, org_level=True),
    ActionProfile("pref.sso_setting_changed", "enterprise", 0.1, org_level=True),
)
GENERATED_ACTIONS: tuple[str, ...] = tuple(profile.name for profile in PROFILES)
ACTION_CODES: dict[str, int] = {name: code for code, name in enumerate(GENERATED_ACTIONS)}

# The bodies of the ``schemas`` and ``actions`` endpoints.
SCHEMAS_BODY = msgspec.json.encode(
    {
        "schemas": [
            {"type": "workspace", "workspace": {"id": "string", "name": "string", "domain": "string"}},
            {"type": "enterprise", "enterprise": {"id": "string", "name": "string", "domain": "string"}},
            {"type": "user", "user": {"id": "string", "name": "string", "email": "string", "team": "string"}},
            {
                "type": "file",
                "file": {"id": "string", "name": "string", "filetype": "string", "title": "string"},
            },
            {
                "type": "channel",
                "channel": {
                    "id": "string",
                    "name": "string",
                    "privacy": "string",
                    "is_shared": "bool",
                    "is_org_shared": "bool",
                    "teams_shared_with": "Optional: varray<string>",
                },
            },
            {
                "type": "app",
                "app": {
                    "id": "string",
                    "name": "string",
                    "is_distributed": "bool",
                    "is_directory_approved": "bool",
                    "is_workflow_app": "bool",
                    "scopes": "array",
                },
            },
            {"type": "workflow", "workflow": {"id": "string", "name": "string"}},
            {"type": "message", "message": {"team": "string", "channel": "string", "timestamp": "string"}},
        ]
    }
)
ACTIONS_BODY = msgspec.json.encode(
    {"actions": {group: list(names) for group, names in ACTION_CATALOGUE.items()}}
)
