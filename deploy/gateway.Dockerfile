# The gateway: one static-ish executable (dist/gigmcp) on a slim Debian with
# bubblewrap and libnftables, the only host tools the sandbox needs.
# Base images are pinned by tag here; pin them by digest when you publish
# (docker buildx imagetools inspect <image>:<tag> shows the digest).

FROM node:22-bookworm-slim AS build
RUN apt-get update && apt-get install -y --no-install-recommends make ca-certificates && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund && touch node_modules/.installed
COPY . .
RUN make build

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends bubblewrap libnftables1 ca-certificates \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/dist/gigmcp /usr/local/bin/gigmcp
# Everything the gateway keeps (database, master key in development, images) lives here.
VOLUME /data
ENV GIG_DATA_DIR=/data GIG_LISTEN=:8080 GIG_PROXY_PORT=8081
EXPOSE 8080
# Root inside the container: creating each sandbox's veth and firewall element needs NET_ADMIN, and the
# launcher drops to a distinct unprivileged uid per sandbox before bubblewrap runs.
HEALTHCHECK --interval=30s --timeout=3s CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/8080 && printf 'GET /healthz HTTP/1.0\\r\\nHost: localhost\\r\\n\\r\\n' >&3 && grep -q '\"status\":\"ok\"' <&3"]
ENTRYPOINT ["/usr/local/bin/gigmcp"]
CMD ["serve"]
