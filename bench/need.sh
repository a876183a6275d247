# Sourced by the bench scripts: `need nginx wrk valgrind` installs (Debian) the packages whose
# command is missing; each package here is named as its command. Adds /usr/sbin to PATH (nginx).
need() {
  export PATH="$PATH:/usr/sbin"
  local missing=() sudo=""
  for cmd in "$@"; do command -v "$cmd" >/dev/null || missing+=("$cmd"); done
  [ "${#missing[@]}" -gt 0 ] || return 0
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}"
}
