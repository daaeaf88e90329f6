# cxstream service image (used by docker-compose.yml).
#   docker build -t cxstream:local .   &&   docker run --rm cxstream:local cxstream --help
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src

# Only what the package build needs (no .venv / .services / tests in the image).
# requirements.lock* : the lock is used as a constraints file when it exists.
COPY pyproject.toml README.md requirements.lock* ./
COPY flows/ flows/
COPY schemas/ schemas/
COPY state/ state/
COPY online_models/ online_models/
COPY sinks/ sinks/
COPY replay/ replay/

RUN if [ -f requirements.lock ]; then \
        pip install -c requirements.lock . ; \
    else \
        pip install . ; \
    fi \
    && useradd --create-home --uid 10001 cxstream

USER cxstream
WORKDIR /home/cxstream

ENV CX_KAFKA__BROKERS=kafka:9092 \
    CX_REDIS__URL=redis://redis:6379/0 \
    CX_METRICS__PORT=9108 \
    CX_METRICS__HOST=0.0.0.0

EXPOSE 9108
CMD ["cxstream", "run"]
