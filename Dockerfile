# The strata image: every service is a console script of the one installed package.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

WORKDIR /src
COPY pyproject.toml README.md ./
COPY contexts/ contexts/
COPY domain/ domain/
COPY runtime/ runtime/
COPY eventlog/ eventlog/
COPY write_api/ write_api/
COPY projections/ projections/
COPY readmodels/ readmodels/
COPY read_api/ read_api/
COPY replay/ replay/
COPY embedded/ embedded/
COPY simulators/ simulators/
COPY gateway/ gateway/
COPY sidecar/ sidecar/
COPY bff/ bff/
COPY identity/ identity/
RUN pip install . && rm -rf /src

RUN useradd --system --create-home --home-dir /home/strata strata \
    && install -d -o strata -g strata /var/lib/strata
USER strata
WORKDIR /home/strata

# Listen beyond the container; embedded mode (no database URLs) keeps its SQLite files here.
ENV STRATA_HOST=0.0.0.0 \
    STRATA_DATA_DIR=/var/lib/strata
EXPOSE 8000

HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('STRATA_PORT', '8000') + '/healthz', timeout=2)"]

CMD ["strata-write-api"]
