"""Make the database itself refuse UPDATE and DELETE of timeline entries."""

from django.db import migrations
from django.db.backends.base.schema import BaseDatabaseSchemaEditor
from django.db.migrations.state import StateApps

TABLE = "cases_timelineentry"

POSTGRESQL_INSTALL = f"""
CREATE OR REPLACE FUNCTION cases_timeline_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'timeline entries are append-only: % refused', TG_OP
        USING ERRCODE = 'integrity_constraint_violation';
END
$$;
CREATE TRIGGER cases_timeline_append_only
    BEFORE UPDATE OR DELETE ON {TABLE}
    FOR EACH ROW EXECUTE FUNCTION cases_timeline_append_only();
"""
POSTGRESQL_REMOVE = f"""
DROP TRIGGER IF EXISTS cases_timeline_append_only ON {TABLE};
DROP FUNCTION IF EXISTS cases_timeline_append_only();
"""

SQLITE_INSTALL = [
    f"""CREATE TRIGGER cases_timeline_no_update BEFORE UPDATE ON {TABLE}
        BEGIN SELECT RAISE(ABORT, 'timeline entries are append-only: UPDATE refused'); END""",
    f"""CREATE TRIGGER cases_timeline_no_delete BEFORE DELETE ON {TABLE}
        BEGIN SELECT RAISE(ABORT, 'timeline entries are append-only: DELETE refused'); END""",
]
SQLITE_REMOVE = [
    "DROP TRIGGER IF EXISTS cases_timeline_no_update",
    "DROP TRIGGER IF EXISTS cases_timeline_no_delete",
]


def install(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    _run(schema_editor, POSTGRESQL_INSTALL, SQLITE_INSTALL)


def remove(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    _run(schema_editor, POSTGRESQL_REMOVE, SQLITE_REMOVE)


def _run(schema_editor: BaseDatabaseSchemaEditor, postgresql: str, sqlite: list[str]) -> None:
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        schema_editor.execute(postgresql, params=None)
    elif vendor == "sqlite":
        for statement in sqlite:
            schema_editor.execute(statement)
    else:
        raise NotImplementedError(f"no append-only trigger for {vendor}")


class Migration(migrations.Migration):
    dependencies = [("cases", "0001_incidents_and_timeline")]

    operations = [migrations.RunPython(install, remove)]
