# SceneScope workbench on CPU: docker build -t scenescope . && docker run -p 8501:8501 scenescope
FROM python:3.11-slim
ENV PIP_NO_CACHE_DIR=1 PYTHONUNBUFFERED=1 STREAMLIT_BROWSER_GATHER_USAGE_STATS=false \
    GRADIO_ANALYTICS_ENABLED=False
WORKDIR /app
RUN apt-get update && apt-get install -y --no-install-recommends make && rm -rf /var/lib/apt/lists/*
COPY requirements.txt pyproject.toml README.md ./
RUN pip install -r requirements.txt
COPY core core
COPY app app
COPY assets assets
COPY indexes/README.md indexes/README.md
COPY .streamlit .streamlit
RUN pip install --no-deps -e . && python -m core.cli demo --prepare-only
EXPOSE 8501
# Inside the container the server must listen on all interfaces for the port mapping to work.
CMD ["streamlit", "run", "app/workbench.py", "--server.address", "0.0.0.0", "--server.port", "8501", \
     "--server.headless", "true", "--browser.gatherUsageStats", "false"]
