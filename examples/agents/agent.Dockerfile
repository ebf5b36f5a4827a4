# An image for an agent project kept outside the callgate repository: callgate's image with your
# built agent added and made the workers' default. From your agent project's directory (its
# package.json depends on the tarball of `npm run pack:agent`; `npm ci && npm run build` done):
#
#   docker build -f path/to/callgate/examples/agents/agent.Dockerfile \
#     --build-arg CALLGATE_IMAGE=callgate:latest --build-arg AGENT_ENTRY=dist/agent.js -t my-agent .
#
# Then run it wherever callgate:latest ran (compose: set `image: my-agent` on media and test-agent).
ARG CALLGATE_IMAGE=callgate:latest
FROM ${CALLGATE_IMAGE}
ARG AGENT_ENTRY=dist/agent.js
# The project with its node_modules (the packed @callgate/agent is plain JavaScript: no rebuild).
COPY --chown=node:node . /agent
ENV AGENT_MODULE=/agent/${AGENT_ENTRY}
# Fails the build if the module does not load or does not export an agent.
RUN node --input-type=module -e "const { loadAgent } = await import('@callgate/agent'); \
      const agent = await loadAgent({ modulePath: process.env.AGENT_MODULE }); \
      console.log('AGENT_MODULE ' + process.env.AGENT_MODULE + ': agent ' + agent.name);"
