from services.common.db import run_migrations_online
from services.download.models import metadata

run_migrations_online(metadata)
