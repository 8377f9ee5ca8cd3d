# The gateway: one static-ish executable (dist/gigmcp) on a slim Debian with
# bubblewrap and libnftables, the only host tools the sandbox needs.
# Base images are pinned by digest (the tag is for readers); to move to a newer base, take the
# digest `docker buildx imagetools inspect <image>:<tag>` prints and update both together.
# The build stage also builds the dashboard: `make build` embeds it in the executable.

FROM node:22-bookworm-slim@sha256:43ac6c60b8f89723f746e8a92ce91abd5017e627ce1ddfe4238355d3a30b772c AS build
RUN apt-get update && apt-get install -y --no-install-recommends make ca-certificates && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund && touch node_modules/.installed
COPY . .
RUN make build

FROM debian:bookworm-slim@sha256:4b50eb66f977b4062683ff434ef18ac191da862dbe966961bc11990cf5791a8d
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
