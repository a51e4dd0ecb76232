# pipeforge base image: pipeforge installed, served by pf-serve (granian) on port 8000.
#
#   docker build -t pipeforge .
#   docker run -p 8000:8000 -v $PWD/examples/iris:/app -w /app \
#       -e PIPEFORGE_CONFIG=/app/config.py pipeforge
#
# Application images build on it with `pf-dockerize APP_DIR pipeforge IMAGE`.
# PYTHON_IMAGE may be any image with Python 3.10+ and its venv module, e.g. one
# made from Debian's python3 and python3-venv (--build-arg PYTHON_IMAGE=...).
ARG PYTHON_IMAGE=python:3.11-slim
FROM ${PYTHON_IMAGE}

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/pipeforge/venv/bin:$PATH

# A virtual environment of its own: the same on every base, and never in the way of a
# distribution's own Python packages.
RUN python3 -m venv /opt/pipeforge/venv
WORKDIR /opt/pipeforge
# The dependencies first, in a layer that only a change to requirements.txt rebuilds.
COPY requirements.txt ./
RUN pip install -r requirements.txt "psycopg[binary]>=3.1" "granian>=2.0"
COPY setup.cfg pyproject.toml README.md ./
COPY pipeforge ./pipeforge
RUN pip install --no-deps . \
 && useradd --create-home --uid 10001 pipeforge \
 && mkdir /app && chown pipeforge /app

USER pipeforge
WORKDIR /app
EXPOSE 8000

HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/alive', timeout=4)" || exit 1

# Set PIPEFORGE_CONFIG (docker run -e ...) to the application's config file;
# PF_SERVE_ARGS sets the address, workers, threads and timeouts (pf-serve -h), e.g.
# -e PF_SERVE_ARGS="--bind 0.0.0.0:8000 --workers 4". pf-serve runs granian, with one
# worker per core, the model loaded once and shared by the workers (docs/serving.md).
ENV PF_SERVE_ARGS="--bind 0.0.0.0:8000 --timeout 60 --graceful-timeout 30"
CMD ["pf-serve"]
