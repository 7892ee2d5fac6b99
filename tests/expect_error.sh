# expect_error CODE "message fragment" qdm-args...: the qdm CLI ($qdm) must exit 1 and print
# "error: CODE: ..." containing the fragment. Sourced by the service and auth tests; calls
# their fail().
expect_error() {
  local code="$1" want="$2"; shift 2
  set +e; out=$("$qdm" "$@" 2>&1); rc=$?; set -e
  [ $rc -eq 1 ] || fail "'qdm $*' exited $rc: $out"
  grep -q -- "error: $code: " <<<"$out" || fail "'qdm $*' said: $out (wanted $code)"
  grep -q -- "$want" <<<"$out" || fail "'qdm $*' said: $out (wanted: $want)"
}
