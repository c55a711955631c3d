# fieldseal: a Go binary on a small Debian base (curl is there for the
# healthcheck, ca-certificates for https identity providers). cgo is on:
# keys in an HSM are reached through its PKCS#11 library, loaded with
# dlopen; mount that library (and its configuration) into the container.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=1 go build -trimpath -ldflags=-s -o /out/fieldseal ./cmd/fieldseal

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --home-dir /var/lib/fieldseal --create-home fieldseal
COPY --from=build /out/fieldseal /usr/local/bin/fieldseal
USER fieldseal
WORKDIR /var/lib/fieldseal
EXPOSE 8080
ENTRYPOINT ["fieldseal"]
CMD ["serve"]
