# The expertd image: a static binary FROM scratch, so it builds without pulling any image.
# Build it with scripts/docker-build.sh, which compiles build/expertd and build/expertd-demo first
# (CGO_ENABLED=0) and then runs `docker build`. Nothing is compiled inside the image.
#
# There is no shell, libc or CA bundle in the image: the daemon needs none of them. Its data dir is set
# explicitly (no $HOME or $XDG_DATA_HOME here) and is a volume. /tmp is where `expertd publish DIR`
# compresses an adapter before handing it to the daemon.
FROM scratch

COPY build/expertd build/expertd-demo /
# The fixture adapter the compose demo publishes (a path on the publishing node).
COPY compress/testdata/peft/python-lora-r16 /fixtures/python-lora-r16
# An empty /data owned by the daemon's user: a new named volume mounted here copies its owner.
COPY --chown=65532:65532 build/rootfs/data /data
COPY --chown=65532:65532 build/rootfs/tmp /tmp

USER 65532:65532
ENV EXPERTD_DATA_DIR=/data
VOLUME /data
# libp2p on TCP and QUIC; the HTTP API (loopback unless EXPERTD_API_LISTEN and EXPERTD_API_TOKEN are set).
EXPOSE 4001/tcp 4001/udp 5180/tcp

ENTRYPOINT ["/expertd"]
CMD ["daemon"]
