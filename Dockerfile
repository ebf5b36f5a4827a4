# One image for every callgate process; the compose file and the Kubernetes manifests pick the
# command. Build: docker build -t callgate .
# With your agent as the workers' default (a module in this build context, e.g. under examples/):
#   docker build --build-arg AGENT_MODULE=examples/agents/voice-pipeline/agent.js -t callgate .
# An agent project kept elsewhere: examples/agents/agent.Dockerfile (an image FROM this one), or
# mount it: examples/agents/docker-compose.agent.yml.
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
# The agent the media and test-agent workers run unless AGENT_MODULE is set at run time; empty:
# the built-in AGENT (parrot). A module that does not import or does not export an agent fails the
# build here, not the first call (its factory runs once, as the workers run it at start-up).
ARG AGENT_MODULE=""
ENV AGENT_MODULE=${AGENT_MODULE}
RUN if [ -n "$AGENT_MODULE" ]; then \
      node --input-type=module -e "const { loadAgent } = await import('@callgate/agent'); \
        const agent = await loadAgent({ modulePath: process.env.AGENT_MODULE }); \
        console.log('AGENT_MODULE ' + process.env.AGENT_MODULE + ': agent ' + agent.name);"; \
    fi
USER node
# Each service overrides the command; the proxy is the default.
CMD ["node", "--max-semi-space-size=1", "proxy/dist/main.js"]
