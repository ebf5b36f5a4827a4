# One image for every callgate process; the compose file and the Kubernetes manifests pick the
# command. Build: docker build -t callgate .
FROM node:22-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
COPY packages/runtime/package.json packages/runtime/
COPY packages/protocol/package.json packages/protocol/
COPY packages/audio/package.json packages/audio/
COPY packages/agent/package.json packages/agent/
COPY packages/simulator/package.json packages/simulator/
COPY proxy/package.json proxy/
COPY workers/media/package.json workers/media/
COPY workers/test-agent/package.json workers/test-agent/
RUN npm ci --no-audit --no-fund
COPY tsconfig.base.json tsconfig.json ./
COPY packages packages
COPY proxy proxy
COPY workers workers
COPY examples examples
RUN npx tsc -b && npm prune --omit=dev

FROM node:22-bookworm-slim
ENV NODE_ENV=production
WORKDIR /app
COPY --from=build /app /app
USER node
# Each service overrides the command; the proxy is the default.
CMD ["node", "proxy/dist/main.js"]
