from services.common.db import run_migrations_online
from services.deid.models import metadata

run_migrations_online(metadata)
