# Tessera: one image for the coordinator and the workers (the command picks the role).
#   docker build -t tessera .
#   docker run -d --init -p 127.0.0.1:7700:7700 -p 127.0.0.1:7780:7780 -v tessera-data:/data \
#     --health-cmd 'tessera health --http 127.0.0.1:7780' tessera                        # coordinator
#   docker run -d --init --stop-timeout 40 tessera worker --coordinator HOST:7700              # a worker
# (publish 7700 beyond loopback only with TLS and tokens: README, "Running on several machines";
# --init, like compose's `init: true`, puts a reaper in front of node for ffmpeg's strays)
# or `docker compose up -d --scale worker=N` with docker-compose.yml.

FROM node:20-bookworm-slim AS build
# better-sqlite3 downloads a prebuilt binary from GitHub, and compiles itself where it cannot: a
# compiler, Python and the Node headers the image ships (/usr/local/include/node, not nodejs.org)
# let the build work without GitHub. Build stage only.
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
ENV npm_config_nodedir=/usr/local
WORKDIR /app
# Dependencies first, so that an edit of the sources does not install them again; the package's
# `prepare` script (proto types + tsc) would need the sources, so it waits for the build below.
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund --ignore-scripts \
 && npm rebuild --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY proto proto
COPY shared shared
COPY coordinator coordinator
COPY worker worker
COPY client client
COPY bench bench
# The image runs Debian's ffmpeg (FFMPEG_PATH below): the npm fallback binaries (about 140 MB) go.
# So do better-sqlite3's build by-products and SQLite sources where it compiled itself (it loads
# build/Release/better_sqlite3.node alone) and fluent-ffmpeg's shipped coverage report and docs:
# about 38 MB of the runtime's 83.
RUN npm run build \
 && npm prune --omit=dev --no-audit --no-fund \
 && rm -rf node_modules/@ffmpeg-installer node_modules/@ffprobe-installer \
 && cd node_modules/better-sqlite3 \
 && rm -rf build/Release/obj build/Release/obj.target build/Release/.deps build/Release/test_extension.node build/Release/sqlite3.a deps src \
 && cd ../fluent-ffmpeg && rm -rf coverage doc

FROM node:20-bookworm-slim
# Debian's ffmpeg (5.1, with the encoders the workers advertise) instead of the 2018 build that
# the npm fallback brings.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ffmpeg ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /data /media \
 && chown node:node /data
# MALLOC_ARENA_MAX: libvips under glibc malloc with many threads fragments memory (sharp's guidance).
# MALLOC_MMAP_THRESHOLD_/MALLOC_TRIM_THRESHOLD_: 1 MiB transfer buffers reused, not mmap'd afresh
# (shared/malloc.ts).
ENV NODE_ENV=production \
    MALLOC_ARENA_MAX=2 \
    MALLOC_MMAP_THRESHOLD_=33554432 \
    MALLOC_TRIM_THRESHOLD_=134217728 \
    FFMPEG_PATH=/usr/bin/ffmpeg \
    FFPROBE_PATH=/usr/bin/ffprobe \
    TESSERA_LOG_FORMAT=json \
    TESSERA_DATA_DIR=/data
WORKDIR /app
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules node_modules
COPY --from=build /app/dist dist
COPY --from=build /app/proto proto
# The dashboard is plain HTML/JS/CSS served from the source tree.
COPY --from=build /app/coordinator/http/assets coordinator/http/assets
# /results and /scratch: the shared results folder and the workers' scratch volume of
# docker-compose.yml; a new named volume takes this owner.
RUN ln -s /app/dist/client/cli.js /usr/local/bin/tessera \
  && mkdir -p /results /scratch && chown node:node /results /scratch
# Non-root: the coordinator only needs its data dir, workers only their temp dir. No VOLUME: the
# workers run this image too and use no /data (each would get an anonymous volume); the
# coordinator's is mounted where it runs (`-v tessera-data:/data`, or docker-compose.yml).
USER node
EXPOSE 7700 7780
# No HEALTHCHECK here: the same image runs workers, which have no coordinator to probe. The
# coordinator's check (`tessera health --http 127.0.0.1:7780`: /healthz, unaffected by TLS and
# tokens on gRPC) is set where the role is known, in docker-compose.yml or `docker run --health-cmd`.
ENTRYPOINT ["tessera"]
# Plaintext off loopback needs --insecure: put the cluster on a private network, or add
# --tls-cert/--tls-key (see README "Running on several machines"). With TLS, --insecure stays while
# --http is 0.0.0.0: the dashboard is plain HTTP whatever gRPC uses (publish its port on the host's
# loopback only, as docker-compose.yml does), or the coordinator refuses to start (exit 2).
CMD ["coordinator", "--listen", "0.0.0.0:7700", "--http", "0.0.0.0:7780", "--data-dir", "/data", "--shared-root", "/media", "--shared-output-root", "/results", "--insecure"]
