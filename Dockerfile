# One image for every role: `exmeta migrate`, `exmeta poll`, `exmeta serve`.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
RUN useradd --system --create-home exmeta
WORKDIR /app
COPY pyproject.toml README.md config.toml ./
COPY core core
COPY poller poller
COPY api api
COPY exmeta exmeta
COPY binance_sim binance_sim
COPY migrations migrations
RUN pip install --no-cache-dir . && rm -rf /root/.cache
USER exmeta
ENTRYPOINT ["exmeta", "--config", "/app/config.toml"]
CMD ["serve"]
