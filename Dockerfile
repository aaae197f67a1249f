# tcpkit in a container: `tcpkit serve` as the entry point, run as a user without privileges.
#
#   docker build -t tcpkit .            (or: podman build -t tcpkit .)
#   docker run --rm -p 9877:9877 tcpkit                         # the echo server on 9877
#   docker run --rm -p 9877:9877 tcpkit --host 0.0.0.0 --port 9877 --model event --log-format json
#
# Stage 1 builds the native addon (node-gyp: python3, make, g++ are in the full node image) and the
# JavaScript, then drops the development packages; stage 2 is the slim image with only what runs.
# test/e2e/container.test.ts runs these steps (and the server) outside a container.

FROM node:20-bookworm AS build
WORKDIR /src
COPY package.json package-lock.json binding.gyp tsconfig.json ./
COPY native native
COPY src src
COPY bin bin
# npm ci's prepare script compiles native/ (build/Release/tcpkit.node) and src/ (dist/).
RUN npm ci --no-audit --no-fund
RUN npm prune --omit=dev --no-audit --no-fund

FROM node:20-bookworm-slim
RUN useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin tcpkit
WORKDIR /opt/tcpkit
COPY --from=build /src/package.json package.json
COPY --from=build /src/node_modules node_modules
COPY --from=build /src/build/Release build/Release
COPY --from=build /src/dist dist
COPY --from=build /src/bin bin
COPY --from=build /src/src/status/dashboard.html src/status/dashboard.html
USER tcpkit
EXPOSE 9877
# A container's stop is SIGTERM: tcpkit stops accepting, lets connections finish for --grace, exits 0.
STOPSIGNAL SIGTERM
ENTRYPOINT ["node", "bin/tcpkit.js", "serve"]
CMD ["--host", "0.0.0.0", "--port", "9877"]
