"""Seeing a running node: per-node metrics (Prometheus), the admin API and its dashboard.

Layers report here, never the other way round: a layer offers ``collectors()`` (metric
families read at scrape time), ``admin_routes()`` (JSON routes under ``/api/v1/<layer>``),
``admin_summary()`` (its line on the dashboard and in ``ember status``) and ``ready()`` (its
part of ``/readyz``), each optional. See ``docs/operability.md``.
"""

from ._config import AdminConfig as AdminConfig
from ._config import derive_token as derive_token
from ._metrics import Collector as Collector
from ._metrics import Histogram as Histogram
from ._metrics import Metric as Metric
from ._metrics import Metrics as Metrics
from ._metrics import counter as counter
from ._metrics import gauge as gauge
from ._otlp import MetricsExportConfig as MetricsExportConfig
from ._routes import AdminRequest as AdminRequest
from ._routes import AdminRoute as AdminRoute
from ._routes import int_param as int_param
from ._tracing import Tracing as Tracing
from ._tracing import TracingConfig as TracingConfig
