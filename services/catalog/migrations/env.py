from services.catalog.models import metadata
from services.common.db import run_migrations_online

run_migrations_online(metadata)
