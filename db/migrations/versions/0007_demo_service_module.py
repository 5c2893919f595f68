"""launch commands name the demo service by its module path engine.fleet.demo_service

Revision ID: 0007
Revises: 0006
"""

from alembic import op


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        "UPDATE services SET launch_command = replace(launch_command, ' -m engine.demo_service ', "
        "' -m engine.fleet.demo_service ') WHERE launch_command LIKE '% -m engine.demo_service %'"
    )


def downgrade() -> None:
    op.execute(
        "UPDATE services SET launch_command = replace(launch_command, ' -m engine.fleet.demo_service ', "
        "' -m engine.demo_service ') WHERE launch_command LIKE '% -m engine.fleet.demo_service %'"
    )
