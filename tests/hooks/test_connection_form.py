"""The connection form each Airflow line builds for ``slack_audit``, read the way its UI reads it.

- 3.1+: the React form from ``HookMetaService`` (conn-fields on 3.2+, the widgets with FAB stand-ins
  on 3.1): every declared extra field, the password relabelled, host/login/port hidden.
- 3.0: the same service, but it reads a provider's form only where WTForms is installed.
- 2.11: the FAB form from ``ProvidersManager``'s widgets and field behaviours.
"""

from __future__ import annotations

import importlib.util

import pytest

from airflow_provider_slack_audit import CONNECTION_FIELDS, CONNECTION_UI_FIELD_BEHAVIOUR
from airflow_provider_slack_audit.version_compat import AIRFLOW_V_3_0_PLUS, AIRFLOW_V_3_1_PLUS

TOKEN_LABEL = CONNECTION_UI_FIELD_BEHAVIOUR["relabeling"]["password"]


@pytest.mark.skipif(not AIRFLOW_V_3_1_PLUS, reason="the React form's service as of 3.1")
def test_the_react_form_shows_every_declared_field_and_the_token_label() -> None:
    from airflow.api_fastapi.core_api.services.ui.connections import HookMetaService

    meta = next(h for h in HookMetaService.hook_meta_data() if h.connection_type == "slack_audit")

    assert set(meta.extra_fields or {}) == set(CONNECTION_FIELDS)
    assert meta.standard_fields is not None
    assert meta.standard_fields.password.title == TOKEN_LABEL
    assert meta.standard_fields.host.hidden and meta.standard_fields.login.hidden


@pytest.mark.skipif(
    AIRFLOW_V_3_0_PLUS or importlib.util.find_spec("wtforms") is None,
    reason="the FAB form of Airflow 2",
)
def test_the_fab_form_shows_every_declared_field_and_the_token_label() -> None:
    from airflow.providers_manager import ProvidersManager

    manager = ProvidersManager()
    widgets = {name for name in manager.connection_form_widgets if name.startswith("extra__slack_audit__")}

    assert widgets == {f"extra__slack_audit__{name}" for name in CONNECTION_FIELDS}
    assert manager.field_behaviours["slack_audit"]["relabeling"]["password"] == TOKEN_LABEL
