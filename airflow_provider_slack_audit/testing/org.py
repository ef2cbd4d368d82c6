"""The org the fake events happen in: its enterprise, workspaces, users, channels, files and apps,
and the ``details`` object of the actions that carry one."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import msgspec

from .catalogue import EntityType

_FIRST_NAMES = (
    "ada", "alan", "barbara", "claude", "dennis", "donald", "edsger", "frances", "grace", "guido",
    "hedy", "ivan", "john", "katherine", "ken", "leslie", "linus", "margaret", "niklaus", "radia",
    "rich", "shafi", "sophie", "tim",
)  # fmt: skip
_LAST_NAMES = ("adams", "baker", "chen", "diaz", "evans", "fischer", "garcia", "hughes")
_WORKSPACE_NAMES = ("Engineering", "Sales", "Support", "Marketing", "Finance", "People")
_CHANNEL_TOPICS = (
    "general", "random", "eng", "sales", "support", "incidents", "deploys", "design", "hiring",
    "security", "finance", "launch", "oncall", "data", "infra", "mobile",
)  # fmt: skip
_FILE_KINDS = (("pdf", "Quarterly report"), ("png", "Screenshot"), ("csv", "Export"), ("docx", "Proposal"),
               ("xlsx", "Forecast"), ("zip", "Logs bundle"), ("mp4", "Screen recording"))  # fmt: skip
_APP_NAMES = (
    "Google Drive", "Jira Cloud", "GitHub", "PagerDuty", "Zoom", "Salesforce", "Asana", "Datadog",
    "Figma", "Loom", "Polly", "Donut", "Workday", "Okta", "Box", "Notion", "Trello", "Zendesk",
)  # fmt: skip
_APP_SCOPES = (
    "channels:read", "chat:write", "files:read", "files:write", "users:read", "users:read.email",
    "groups:read", "commands", "incoming-webhook", "reactions:read", "team:read", "im:history",
)  # fmt: skip

USER_COUNT = 48
_CHANNEL_COUNT = 300
_FILE_COUNT = 4000
_ID_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"


class Directory:
    """The org the events happen in: one enterprise, its workspaces, users, channels, files and apps.

    Every object is JSON-encoded once here; rendering an entry then only concatenates bytes.
    """

    def __init__(self, rng: random.Random) -> None:
        self._used_ids: set[str] = set()
        enterprise = {"id": self._new_id(rng, "E"), "name": "Acme Corp", "domain": "acme"}
        workspaces = [
            {"id": self._new_id(rng, "T"), "name": name, "domain": f"acme-{name.lower()}"}
            for name in _WORKSPACE_NAMES
        ]
        self.workspace_ids: list[str] = [workspace["id"] for workspace in workspaces]
        self.enterprise_location = msgspec.json.encode({"type": "enterprise", **enterprise})
        self.users = [self._make_user(rng, number, enterprise["id"]) for number in range(USER_COUNT)]
        self.user_ids: list[str] = [user["id"] for user in self.users]
        # Each user works in one home workspace: where their non-org-level actions happen.
        self.actor_location = [
            msgspec.json.encode({"type": "workspace", **workspaces[rng.randrange(len(workspaces))]})
            for _ in self.users
        ]
        # Two addresses per user (office and home), from the documentation ranges of RFC 5737.
        self.actor_ips_json = [
            (
                msgspec.json.encode(f"203.0.113.{rng.randrange(1, 255)}"),
                msgspec.json.encode(f"198.51.100.{rng.randrange(1, 255)}"),
            )
            for _ in self.users
        ]
        self.actor_json = [msgspec.json.encode({"type": "user", "user": user}) for user in self.users]
        channels = [self._make_channel(rng, number) for number in range(_CHANNEL_COUNT)]
        files = [self._make_file(rng, number) for number in range(_FILE_COUNT)]
        self.apps = [self._make_app(rng, name) for name in _APP_NAMES]
        objects: dict[EntityType, list[dict[str, Any]]] = {
            "user": self.users,
            "channel": channels,
            "file": files,
            "app": self.apps,
            "workspace": workspaces,
            "enterprise": [enterprise],
        }
        self.entity_json: dict[EntityType, list[bytes]] = {
            kind: [msgspec.json.encode({"type": kind, kind: obj}) for obj in pool]
            for kind, pool in objects.items()
        }
        self.entity_ids: dict[EntityType, list[str]] = {
            kind: [obj["id"] for obj in pool] for kind, pool in objects.items()
        }
        self.entity_index: dict[str, tuple[EntityType, int]] = {
            entity_id: (kind, number)
            for kind, ids in self.entity_ids.items()
            for number, entity_id in enumerate(ids)
        }
        self.app_json = [msgspec.json.encode(app) for app in self.apps]

    def _new_id(self, rng: random.Random, prefix: str) -> str:
        """Draw a Slack-looking id (prefix + 10 characters) no other object of the org has."""
        while True:
            candidate = prefix + "".join(rng.choices(_ID_ALPHABET, k=10))
            if candidate not in self._used_ids:
                self._used_ids.add(candidate)
                return candidate

    def _make_user(self, rng: random.Random, number: int, enterprise_id: str) -> dict[str, Any]:
        first = _FIRST_NAMES[number % len(_FIRST_NAMES)]
        last = _LAST_NAMES[number // len(_FIRST_NAMES) % len(_LAST_NAMES)]
        return {
            "id": self._new_id(rng, "W"),
            "name": f"{first}.{last}",
            "email": f"{first}.{last}@acme.example.com",
            "team": enterprise_id,
        }

    def _make_channel(self, rng: random.Random, number: int) -> dict[str, Any]:
        privacy = "private" if rng.random() < 0.3 else "public"
        is_shared = rng.random() < 0.1
        channel: dict[str, Any] = {
            "id": self._new_id(rng, "C" if privacy == "public" else "G"),
            "privacy": privacy,
            "name": f"{_CHANNEL_TOPICS[number % len(_CHANNEL_TOPICS)]}-{number}",
            "is_shared": is_shared,
            "is_org_shared": rng.random() < 0.2,
        }
        if is_shared:
            channel["teams_shared_with"] = rng.sample(self.workspace_ids, 2)
        return channel

    def _make_file(self, rng: random.Random, number: int) -> dict[str, Any]:
        filetype, title = _FILE_KINDS[rng.randrange(len(_FILE_KINDS))]
        return {
            "id": self._new_id(rng, "F"),
            "name": f"{title.lower().replace(' ', '-')}-{number}.{filetype}",
            "filetype": filetype,
            "title": f"{title} {number}",
        }

    def _make_app(self, rng: random.Random, name: str) -> dict[str, Any]:
        return {
            "id": self._new_id(rng, "A"),
            "name": name,
            "is_distributed": rng.random() < 0.8,
            "is_directory_approved": rng.random() < 0.6,
            "is_workflow_app": False,
            "scopes": sorted(rng.sample(_APP_SCOPES, rng.randrange(2, 6))),
        }


def _app_scopes_expanded_details(variant: int, app: int, directory: Directory) -> dict[str, Any]:
    scopes = directory.apps[app]["scopes"]
    return {
        "new_scopes": [*scopes, _APP_SCOPES[variant % len(_APP_SCOPES)]],
        "previous_scopes": scopes,
        "is_internal_integration": False,
        "is_token_rotation_enabled_app": bool(variant & 2),
    }


def _app_installed_details(variant: int, app: int, directory: Directory) -> dict[str, Any]:
    return {
        "app_owner_id": directory.user_ids[variant % len(directory.user_ids)],
        "scopes": directory.apps[app]["scopes"],
        "is_internal_integration": bool(variant & 4),
    }


def _sso_setting_details(variant: int, _enterprise: int, _directory: Directory) -> dict[str, Any]:
    values = ("optional", "required", "disabled")
    return {"previous_value": values[variant % 3], "new_value": values[(variant + 1) % 3]}


def _channel_join_details(variant: int, _channel: int, directory: Directory) -> dict[str, Any] | None:
    # Half the joins are invitations; the others are self-service and carry no details.
    return {"inviter": directory.users[variant % len(directory.users)]} if variant & 1 else None


def _login_failed_details(variant: int, _user: int, _directory: Directory) -> dict[str, Any]:
    return {"reason": ("bad_password", "sso_failure", "two_factor_failure")[variant % 3]}


# The actions that carry a ``details`` object; the others have none.
DETAIL_BUILDERS: dict[str, Callable[[int, int, Directory], dict[str, Any] | None]] = {
    "app_scopes_expanded": _app_scopes_expanded_details,
    "app_installed": _app_installed_details,
    "pref.sso_setting_changed": _sso_setting_details,
    "user_channel_join": _channel_join_details,
    "user_login_failed": _login_failed_details,
}
