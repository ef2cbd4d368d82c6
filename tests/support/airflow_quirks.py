"""Where ``airflow dags test`` on an Airflow line behaves unlike a deployment, and what the system
tests do about it. Each quirk names the Airflow issue or the code path it comes from."""

from __future__ import annotations

from airflow_provider_slack_audit.version_compat import AIRFLOW_V_3_0_PLUS, AIRFLOW_V_3_1_PLUS

AIRFLOW_3_0 = AIRFLOW_V_3_0_PLUS and not AIRFLOW_V_3_1_PLUS

# Airflow 3.0's `dags test` neither writes the DAG to the metadata DB nor activates its assets, so a
# task with an outlet fails as "inactive asset" (apache/airflow#51644). A deployment's DAG processor
# does both; `airflow dags reserialize` does them before each run, as the compatibility page tells
# 3.0 users to.
RESERIALIZE_BEFORE_DAGS_TEST = AIRFLOW_3_0

# Airflow 3.0's `dags test` starts a task's retry from the failed try's trigger event: it never clears
# the task instance's next_method, which a deployment does (TaskInstance.clear_next_method_args).
DAGS_TEST_RETRY_RESUMES_THE_OLD_EVENT = AIRFLOW_3_0
