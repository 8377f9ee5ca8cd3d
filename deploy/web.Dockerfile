# The dashboard: its static export, served by nginx, which forwards the API and
# MCP paths to the gateway so the browser sees one origin.
# Base images are pinned by tag here; pin them by digest when you publish.

FROM node:22-bookworm-slim AS build
WORKDIR /web
COPY web/package.json web/package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY web/ ./
RUN npm run build

FROM nginx:1.27-alpine
COPY deploy/web.nginx.conf /etc/nginx/conf.d/default.conf
COPY --from=build /web/out /usr/share/nginx/html
# nginx workers run unprivileged; the master only binds port 3000.
EXPOSE 3000
HEALTHCHECK --interval=30s --timeout=3s CMD ["wget", "-q", "-O", "/dev/null", "http://127.0.0.1:3000/login/"]
