"""The dependencies the catalog's routes name."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from services.catalog.bootstrap import Catalog
from services.common.app import provided

CatalogDep = Annotated[Catalog, Depends(provided(Catalog))]
