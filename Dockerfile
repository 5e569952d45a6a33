# hsmsim as a container: `hsmsim serve` (and any other hsmsim command) on Node 20.
# Build: docker build -t hsmsim .      Run: see docker-compose.yml (one NATS) and docker-compose.cluster.yml (three).

FROM node:20-slim AS build
WORKDIR /app
COPY package.json package-lock.json tsconfig.json tsconfig.build.json ./
# --ignore-scripts: the dev dependencies include pkcs11js, a native addon needed only by the tests (no compiler here);
# it also skips `prepare`, so the build runs explicitly once the sources are in.
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY src ./src
RUN npx tsc -p tsconfig.build.json && npm prune --omit=dev --ignore-scripts

FROM node:20-slim
ENV NODE_ENV=production
WORKDIR /app
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY bin ./bin
COPY deploy/healthcheck.mjs ./deploy/healthcheck.mjs
RUN ln -s /app/bin/hsmsim.js /usr/local/bin/hsmsim && mkdir -p /var/lib/hsmsim && chown node:node /var/lib/hsmsim
# the simulator's key file lives here (a volume in the compose files)
VOLUME /var/lib/hsmsim
USER node
ENTRYPOINT ["node", "/app/bin/hsmsim.js"]
CMD ["help"]
