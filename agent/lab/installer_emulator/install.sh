#!/bin/sh
# ispmanager install.pkg -- the ispagent lab's EMULATOR of the vendor's install.sh (ISPmanager 6).
#
# It shows its caller what the real script shows: the same stages in the same order, the same
# questions and menus (read from standard input: piped answers work, end of input ends the run with
# exit 1), the same messages (errors red, info green, no prefix), the same exit codes and the same
# files left behind. Instead of the vendor's and the distribution's servers it talks to the lab's
# mirror, whose URLs agent/lab/mirror.py fills in when it serves this file. POSIX sh
# only: it runs under dash (`sh install.sh`) as well as bash, as the real script does.
#
# Stages, in the real script's order (each is appended to the stage trace when reached):
#   helpers     apt-get update, then lsb-release, wget and gpg from the distribution's repository
#   os          OS detection (skipped with --osversion) and the End-of-Support question
#   report      usage report "runinstall" (it creates a missing /etc/machine-id); root, old panel, SELinux
#   banner      "Installing on DEBIAN <codename>", memory and disk tables
#   ram         RAM check (skipped with --silent; at most 1024 MB means a mini install)
#   hostname    hostname check and its prompt (skipped with --ignore-hostname or --silent)
#   release     release menu, unless --release or an existing repository file
#   edition     package name, or the edition menu; usage report "choicepkg"; MySQL refused on low RAM
#   webserver   web server (OpenLiteSpeed refused on low RAM)
#   installed   already-installed checks (the package; coremanager over a panel)
#   repository  usage report "startinstall"; mirror, key, base and ispmanager-6 repositories, apt-get
#               update, repo.version (the whole stage tried 4 times when a repository answers with errors)
#   install     the package looked up (not found: usage report "cancelinstall"); COREmanager; license; panel
#
# Still the emulator's guesses, not pinned by the recordings (the recorded runs of the vendor's script):
#   - the option texts of --help between its first and last option (the layout is real), the items of
#     the edition, database and web-server menus, apt's progress lines;
#   - the root, old-panel and SELinux checks before the banner;
#   - "Checking ispmanager-base repo... Found" (only "Not found" was recorded): here when the base
#     list is there and its suite answers;
#   - no blank line after an answered question (only the one after each menu and question was recorded);
#   - https for intstable as for intbeta; ispsystem.gpg instead of ispmanager.gpg, and python among
#     the helpers (last), on every End-of-Support release (both recorded on Debian 10 only);
#   - the order of apt's warnings for an unknown release (apt's order of the list files is assumed);
#   - one mirror: `Using <the lab's mirror>` always (the real script probes download.ispmanager.com
#     and falls back to mirrors.download.ispmanager.com, a fallback the lab does not have);
#   - apt's words for a reset connection ("Could not connect to <host>"); for a name that does not
#     resolve they are the recorded ones ("Temporary failure resolving '<host>'");
#   - the lab's mirror speaks http only: the https URLs the real script writes are fetched over http.
#
# Emulator-only settings, for tests: ISPMGR_EMULATOR_ROOT=DIR runs against the tree DIR instead of
# / (and starts no daemon); ISPMGR_EMULATOR_TRACE=FILE receives the stage trace (default
# /var/lib/ispmanager-emulator/stages, when writable).
set -e

MIRROR_URL="@@MIRROR_URL@@"  # the vendor's download host
# The distribution's own package repository: apt's first http(s) source, as on a real server.
DIST_URL=$(grep -v '^[[:space:]]*#' "${ISPMGR_EMULATOR_ROOT:-}/etc/apt/sources.list" 2>/dev/null |
	grep -o 'https\?://[^[:space:]]*' | head -n 1)
DIST_URL="${DIST_URL:-@@DIST_URL@@}"
LICENSE_URL="@@LICENSE_URL@@"
INSTALL_SECONDS="@@INSTALL_SECONDS@@"
LICENSE_RETRY_DELAY="@@LICENSE_RETRY_DELAY@@"
REPO_RETRY_DELAY="@@REPO_RETRY_DELAY@@"
EU="@@EU@@"
INTERNAL_REPO_HOST=intrepo.download.ispmanager.com

R="${ISPMGR_EMULATOR_ROOT:-}"
MGR="$R/usr/local/mgr5"
EMU_STATE="$R/var/lib/ispmanager-emulator"
HELPERS="lsb-release wget gpg"
# End-of-Support releases: python is among their helpers, and their repository key is ispsystem.gpg
OLD_RELEASES="wheezy jessie stretch buster trusty xenial bionic focal"

Error() { printf '\033[1;31m%s\033[0m\n' "$*"; }
Info() { printf '\033[1;32m%s\033[0m\n' "$*"; }

# An answer from standard input, after the prompt text $1. That text shows only on a terminal
# (read -p); at end of input `read` fails and `set -e` ends the run with exit 1, as in the real script.
Ask() { read -r -p "$1" answer; }

# The answer to a menu or a yes/no question: a blank line follows the question, then the hidden prompt.
Choose() { echo; Ask "Your choice is: "; }

# On stderr, as the real script prints it: its layout (a leading blank line, $0 as it was run, one
# tab-indented line per option) is the real one; the option texts between the first and the last are
# the emulator's own words.
Usage() {
	cat >&2 <<USAGE

Usage:
	$0 --help 	Print this help

	$0 [options] [mgrname]
	--osfamily <FAMILY>     REDHAT, DEBIAN . Force if can not be detected.
	--osversion <VERSION>   Version of the OS, e.g. bookworm or 9. Force if can not be detected.
	--release <type>        Install non-interactively from release <type> (stable, beta).
	--noinstall             Only add the repositories, install no packages.
	--install-business      Install ispmanager business (REDHAT family only).
	--ignore-hostname       Do not check the hostname.
	--silent                Ask neither hostname nor activation key; exit on those errors. Implies --ignore-hostname
	--no-letsencrypt        No Let's Encrypt certificate for the panel
	--le-domain             Domain of the panel's Let's Encrypt certificate (or the LE_DOMAIN variable)
	--disable-fail2ban      Do not set up fail2ban
	--ispmgr5               Install ispmanager 5
	--openlitespeed         OpenLiteSpeed web server (mgrname ispmanager-lite only)
	--litespeed <SERIAL>    LiteSpeed web server with this serial (xxxx-xxxx-xxxx-xxxx), or TRIAL
	--dbtype <type>         mysql, sqlite . Panel database. Default - sqlite.
	--mysql-server <type>   mysql, mariadb . MySQL server. Ubuntu and RedHat 8-9 only.
	--allow-eol-os          Install on an OS at End of Support.
	--activation-key <key>  Activation key for your ispmanager license
USAGE
}

# -- emulator bookkeeping (never changes what a run does) -----------------------------------------

Note() { { mkdir -p "$EMU_STATE" && printf '%s\n' "$2" >> "$EMU_STATE/$1"; } 2>/dev/null || true; }

Stage() {
	if [ -n "${ISPMGR_EMULATOR_TRACE:-}" ]; then
		{ printf '%s\n' "$1" >> "$ISPMGR_EMULATOR_TRACE"; } 2>/dev/null || true
	else
		Note stages "$1"
	fi
}

# Fetch URL FILE, with wget's exit codes: 0 fetched, 8 the server answered with an error status
# (printed), 4 no answer; and curl's 6 when the host name does not resolve (apt words that one
# differently). curl or wget as the real script uses them, else python3 (all a lab host has).
# Proxies are ignored: lab hosts reach only the lab's own services.
Fetch() {
	if ! Resolves "$(HostOf "$1")"; then return 6; fi
	if command -v curl >/dev/null 2>&1; then
		code=$(curl -s --noproxy '*' --connect-timeout 30 -o "$2" -w '%{http_code}' "$1") || return 4
		if [ "$code" -ge 400 ]; then echo "$code"; return 8; fi
		return 0
	fi
	if command -v wget >/dev/null 2>&1; then
		got=0; wget -q --no-proxy -T 30 -t 1 -O "$2" "$1" || got=$?
		case $got in 0) return 0 ;; 8) echo "error status"; return 8 ;; *) return 4 ;; esac
	fi
	python3 - "$1" "$2" <<'PY'
import sys, urllib.error, urllib.request
url, target = sys.argv[1:3]
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
try:
    with opener.open(url, timeout=30) as reply:
        data = reply.read()
except urllib.error.HTTPError as error:
    print(f"{error.code}  {error.reason}")
    sys.exit(8)
except Exception:
    sys.exit(4)
with open(target, "wb") as out:
    out.write(data)
PY
}

HostOf() { echo "$1" | sed 's|^[a-z]*://||; s|[:/].*||'; }

HostPort() { echo "$1" | sed 's|^[a-z]*://||; s|/.*||'; }  # what the real script calls its mirror

# Whether a host name resolves. An IPv4 address needs no lookup: getent would try a reverse one,
# which fails for the lab's own addresses.
Resolves() {
	case "$1" in *[!0-9.]*) ;; *) return 0 ;; esac
	! command -v getent >/dev/null 2>&1 || getent hosts "$1" >/dev/null 2>&1
}

OldRelease() { case " $OLD_RELEASES " in *" $1 "*) return 0 ;; esac; return 1; }

# apt-get update's warning for an index it could not fetch (Fetch's code $2); offline, apt cannot
# even resolve the name.
AptFetchWarning() {
	if [ "$2" = 6 ]; then
		echo "W: Failed to fetch $1  Temporary failure resolving '$(HostOf "$1")'" >&2
	else
		echo "W: Failed to fetch $1  Could not connect to $(HostOf "$1")" >&2
	fi
}

OsReleaseValue() { sed -n "s/^$1=//p" "$R/etc/os-release" 2>/dev/null | tr -d '"' | head -n 1; }

Pause() { sleep "$(awk "BEGIN { print $INSTALL_SECONDS / 2 }")"; }

Daemons() {  # mgrctl exit restarts the panel's web server; not in a test tree
	if [ -z "$R" ]; then "$MGR/sbin/mgrctl" "$@" >/dev/null 2>&1 || true; fi
}

PackageInstalled() { grep -qx "$1" "$MGR/etc/emulator-packages" 2>/dev/null; }

# Packages are unpacked under dpkg's own journal, the real one of the server: an entry in
# /var/lib/dpkg/updates while dpkg works, gone when it is done. A power cut mid-install leaves it,
# and from then on apt refuses to install anything until `dpkg --configure -a` (which replays and
# clears it) has run: what a real server shows after a reboot during an install.
DPKG_UPDATES="$R/var/lib/dpkg/updates"
DpkgBegin() { mkdir -p "$DPKG_UPDATES" && : > "$DPKG_UPDATES/0000"; }
DpkgEnd() { rm -f "$DPKG_UPDATES/0000"; }
AptInstallCheck() {  # apt-get install's first words on a server whose dpkg was interrupted
	if [ -n "$(ls -A "$DPKG_UPDATES" 2>/dev/null)" ]; then
		echo "E: dpkg was interrupted, you must manually run 'dpkg --configure -a' to correct the problem. " >&2
		exit 100
	fi
}

# -- options ---------------------------------------------------------------------------------------

NeedValue() { if [ "$1" -lt 2 ]; then Usage; exit 1; fi; }

OSFAMILY="" OSVERSION="" OSNAME="" release="" silent="" ignore_hostname="" allow_eol="" dbtype=""
mysql_server="" activation_key="${ACTIVATION_KEY:-}" noinstall="" mgrname="" pkgname="" recommended=""
letsencrypt=yes le_domain="${LE_DOMAIN:-}" fail2ban=yes webserver="" interactive="" available=""
INSTALL_MINI="${INSTALL_MINI:-}"
while [ $# -gt 0 ]; do
	case "$1" in
		--help|-h) Usage; exit 0 ;;
		--osfamily) NeedValue $#; OSFAMILY=$(echo "$2" | tr '[:lower:]' '[:upper:]'); shift ;;
		--osversion) NeedValue $#; OSVERSION=$2; shift ;;
		--release) NeedValue $#; release=$2; shift ;;
		--noinstall) noinstall=yes ;;
		--install-business) pkgname=ispmanager-business ;;
		--ignore-hostname) ignore_hostname=yes ;;
		--silent) silent=yes; ignore_hostname=yes; allow_eol=yes ;;
		--no-letsencrypt) letsencrypt="" ;;
		--le-domain) NeedValue $#; le_domain=$2; shift ;;
		--disable-fail2ban) fail2ban="" ;;
		--ispmgr5|--ispmgr6) ;;
		--openlitespeed) webserver=openlitespeed ;;
		--litespeed) NeedValue $#; webserver=litespeed; shift ;;
		--dbtype) NeedValue $#; dbtype=$2; shift ;;
		--mysql-server) NeedValue $#; mysql_server=$2; shift ;;
		--allow-eol-os) allow_eol=yes ;;
		--activation-key) NeedValue $#; activation_key=$2; shift ;;
		--mirror)  # the real script checks $MIRROR here, not its argument
			if [ -z "${MIRROR:-}" ]; then Error "Empty mirror"; exit 1; fi
			NeedValue $#; shift ;;
		-*) Usage; exit 1 ;;
		*) mgrname=$(echo "$1" | tr '[:upper:]' '[:lower:]') ;;
	esac
	shift
done
if [ -n "$dbtype" ] && [ "$dbtype" != mysql ] && [ "$dbtype" != sqlite ]; then Error "Incorrect database type"; exit 1; fi
if [ -n "$mysql_server" ] && [ "$mysql_server" != mysql ] && [ "$mysql_server" != mariadb ]; then
	Error "Incorrect mysql server"; exit 1
fi

# -- helpers: apt-get update + install from the distribution's repository ------------------------

AptLock() {
	# apt-get update opens its lists lock first: a user who cannot gets apt's error and exit 100.
	# (a subshell: a failed redirection of `:`, a special builtin, would end dash itself)
	if ! (: >> "$R/var/lib/apt/lists/lock") 2>/dev/null; then
		echo "E: Could not open lock file /var/lib/apt/lists/lock - open (13: Permission denied)" >&2
		echo "E: Unable to lock directory /var/lib/apt/lists/" >&2
		exit 100
	fi
}

HelperInstalled() {
	if grep -qx "$1" "$EMU_STATE/helpers" 2>/dev/null; then return 0; fi
	[ -z "$R" ] && dpkg-query -W -f '${Status}' "$1" 2>/dev/null | grep -q "install ok installed"
}

InstallHelpers() {
	Stage helpers
	AptLock
	codename=$(OsReleaseValue VERSION_CODENAME)
	url="$DIST_URL/dists/${codename:-stable}/InRelease"
	rc=0; status=$(Fetch "$url" /dev/null) || rc=$?
	if [ $rc = 8 ]; then
		echo "E: Failed to fetch $url  $status" >&2
		echo "E: Some index files failed to download. They have been ignored, or old ones used instead." >&2
		exit 100
	fi
	if [ $rc != 0 ]; then  # offline, apt-get update only warns and exits 0
		AptFetchWarning "$url" $rc
		echo "W: Some index files failed to download. They have been ignored, or old ones used instead." >&2
	fi
	echo "Reading package lists..."
	missing=""
	helpers=$HELPERS
	if OldRelease "$codename"; then helpers="$HELPERS python"; fi
	for package in $helpers; do
		if ! HelperInstalled "$package"; then missing="$missing $package"; fi
	done
	if [ -z "$missing" ]; then return 0; fi
	if [ $rc != 0 ]; then
		echo "Building dependency tree..."
		echo "Reading state information..."
		for package in $missing; do echo "E: Unable to locate package $package" >&2; done
		exit 100
	fi
	AptInstallCheck
	for package in $missing; do
		echo "Setting up $package ..."
		Note helpers "$package"
	done
}

# -- os ----------------------------------------------------------------------------------------------

DetectOS() {
	Stage os
	os_id=$(OsReleaseValue ID)
	if [ -f "$R/etc/redhat-release" ]; then
		OSFAMILY=${OSFAMILY:-REDHAT}
		OSVERSION=${OSVERSION:-$(OsReleaseValue VERSION_ID)}
		OSVERSION=${OSVERSION%%.*}
		OSNAME="centos-$OSVERSION"
	else
		case "$os_id" in debian|ubuntu) OSFAMILY=${OSFAMILY:-DEBIAN} ;; esac
		if [ -z "$OSFAMILY" ] && [ -f "$R/etc/debian_version" ]; then OSFAMILY=DEBIAN; fi
		OSVERSION=${OSVERSION:-$(OsReleaseValue VERSION_CODENAME)}
		OSNAME="${os_id:-debian}-$OSVERSION"
	fi
	if [ -z "$OSFAMILY" ] || [ -z "$OSVERSION" ]; then
		Error "Unknown os version. Try to use \"--osversion\" option"; exit 1
	fi
}

CheckOS() {
	eol=""
	case "$OSFAMILY:$OSVERSION" in
		REDHAT:8|REDHAT:9|DEBIAN:bullseye|DEBIAN:bookworm|DEBIAN:jammy|DEBIAN:noble) ;;
		REDHAT:6|REDHAT:7|DEBIAN:wheezy|DEBIAN:jessie|DEBIAN:stretch|DEBIAN:buster) eol=yes ;;
		DEBIAN:trusty|DEBIAN:xenial|DEBIAN:bionic|DEBIAN:focal) eol=yes ;;
		*) Error "Unsupported os version ($OSVERSION)"; exit 1 ;;
	esac
	if [ "$os_id:$OSVERSION" = vzlinux:8 ]; then eol=yes; fi
	if [ -n "$eol" ] && [ -z "$allow_eol" ]; then
		Error "Your operating system is at End of Support (EOL). Correct operation of ispmanager on this OS is not guaranteed."
		Error "You can see the status of ispmanager support and release of updates for your OS in the documentation https://www.ispmanager.com/docs/ispmanager/support-stages#supported-os."
		echo "Continue installation? (y/N)"
		Choose
		if [ "$answer" != y ]; then exit 0; fi  # declined: nothing installed
	fi
	if [ -n "$mysql_server" ]; then
		if [ "$os_id" = debian ] || [ "$OSFAMILY:$OSVERSION" = REDHAT:7 ]; then
			Error "The '--mysql-server' option not supported on this OS"; exit 1
		fi
	fi
}

# -- usage report, root and other early checks ---------------------------------------------------

# The machine id each usage report sends: created when missing, an existing one left alone. So a
# non-root user meets the shell's own error here only on a host without one (dash: exit 2).
MachineID() {
	if [ ! -f "$R/etc/machine-id" ]; then
		echo "$(tr -d '-' < /proc/sys/kernel/random/uuid)" > "$R/etc/machine-id"
	fi
}

# A usage report (runinstall, choicepkg, startinstall, cancelinstall, errorinstall): the real script
# posts it to the vendor with a hash of the default route's MAC address; the emulator sends nothing.
# Without a default route each report prints cat's error, as the real one does.
UsageReport() {
	MachineID
	iface=$(ip route show default 2>/dev/null | awk '{ print $5; exit }')
	mac=$(cat "/sys/class/net/$iface/address" || true)
	: "$1 $mac"
}

Cancel() { UsageReport cancelinstall; exit 1; }  # the real script's CancelInstall: a report, then exit 1

EarlyChecks() {
	if [ "$(id -u)" != 0 ]; then Error "You must be root user to continue"; exit 1; fi
	if [ -d "$R/usr/local/ispmgr" ]; then Error "Old managers is installed"; exit 1; fi
	if SelinuxEnabled; then
		if [ -n "$release" ] || [ -n "$silent" ]; then Error "SELinux is enabled, aborting installation."; exit 1; fi
		Error "SELinux is enabled on your server. It is strongly recommended to disable SELinux before you proceed."
		echo "Would you like to disable SELinux right now and reboot the server? (y/N)"
		Ask
		if [ "$answer" != y ]; then exit 1; fi
		sed -i 's/^SELINUX=.*/SELINUX=disabled/' "$R/etc/selinux/config"
		Info "SELinux is disabled. The server reboots now: run install.sh again after the reboot"
		exit 0
	fi
}

SelinuxEnabled() {
	if [ -n "$R" ]; then
		[ -x "$R/usr/sbin/selinuxenabled" ] && "$R/usr/sbin/selinuxenabled" >/dev/null 2>&1
	else
		command -v selinuxenabled >/dev/null 2>&1 && selinuxenabled >/dev/null 2>&1
	fi
}

# -- banner and RAM ----------------------------------------------------------------------------------

MemValueMB() { awk -v key="$1:" '$1 == key { print int($2 / 1024); exit }' "$R/proc/meminfo"; }

Banner() {
	Stage banner
	Info "Installing on $OSFAMILY $OSVERSION"
	printf '%-8s %10s %10s %10s\n' "" total free available
	printf '%-8s %10s %10s %10s\n' Mem: "$(MemValueMB MemTotal)" "$(MemValueMB MemFree)" "$(MemValueMB MemAvailable)"
	df -h "$R/" 2>/dev/null || true
}

CheckRam() {
	Stage ram
	mem=$(MemValueMB MemTotal)
	minmem=512
	if [ "$OSFAMILY" = REDHAT ] && [ "$OSVERSION" -ge 8 ] 2>/dev/null; then minmem=1536; fi
	if [ -z "$silent" ] && [ "$mem" -le "$minmem" ]; then
		Error "You have to low memory: $mem"
		Error "You need to have at least $minmem Mb"
		Cancel
	fi
	if [ "$mem" -le 1024 ]; then INSTALL_MINI=yes; fi
}

# -- hostname --------------------------------------------------------------------------------------

CurrentHostname() {
	if [ -n "$R" ]; then  # `hostname -f` read from the tree's files
		short=$(cat "$R/etc/hostname" 2>/dev/null || true)
		full=$(awk -v h="$short" '$1 !~ /^#/ { for (i = 2; i <= NF; i++) if ($i == h) { print $2; exit } }' \
			"$R/etc/hosts" 2>/dev/null || true)
		echo "${full:-$short}"
	elif [ "$OSFAMILY" = REDHAT ]; then
		hostname
	else
		hostname -f 2>/dev/null || hostname
	fi
}

HostnameValid() {  # 2-50 characters, a dot, no underscore, last label [A-Za-z0-9-] only
	if [ ${#1} -lt 2 ] || [ ${#1} -gt 50 ]; then return 1; fi
	case "$1" in *_*) return 1 ;; *.*) ;; *) return 1 ;; esac
	last=${1##*.}
	case "$last" in ""|*[!A-Za-z0-9-]*) return 1 ;; esac
	return 0
}

PrimaryAddress() {
	set -- ${SSH_CONNECTION:-}
	if [ -n "${3:-}" ]; then echo "$3"; return 0; fi
	set -- $(hostname -I 2>/dev/null || true)
	echo "${1:-127.0.1.1}"
}

HostsName() {  # whether a line of /etc/hosts carries the name $1 (what `hostname -f` looks up)
	awk -v h="$1" '$1 !~ /^#/ { for (i = 2; i <= NF; i++) if ($i == h) found = 1 } END { exit !found }' "$R/etc/hosts"
}

# As the real script does: the name is cut at its last label in /etc/hostname. In /etc/hosts the
# old name ($2) is replaced by the new one wherever it occurs (the real script's plain sed, regex dots
# and all), so the host's own line is rewritten; the short name joins a line that has the new name
# alone; only a file where neither helps gets a new line. The file is rewritten in place, not
# renamed over: in a container /etc/hosts may be a mount point.
SetHostname() {
	short=${1%.*}
	printf '%s\n' "$short" > "$R/etc/hostname"
	if [ -z "$R" ]; then hostname "$short" || true; fi
	hosts=$(cat "$R/etc/hosts" 2>/dev/null || true)
	if [ -n "$2" ]; then hosts=$(printf '%s\n' "$hosts" | sed "s|$2|$1|g"); fi
	hosts=$(printf '%s\n' "$hosts" | sed -E "s|^([0-9.]+[[:space:]]+)$1[[:space:]]*\$|\\1$1 $short|")
	printf '%s\n' "$hosts" > "$R/etc/hosts"
	if ! HostsName "$short"; then printf '%s %s %s\n' "$(PrimaryAddress)" "$1" "$short" >> "$R/etc/hosts"; fi
}

# Without a terminal only the error line shows: the prompt for a new name is read -p's text.
CheckHostname() {
	Stage hostname
	if [ -n "$ignore_hostname" ] || [ -e "$R/.dockerinit" ]; then return 0; fi
	current=$(CurrentHostname)
	hn=$current
	while ! HostnameValid "$hn"; do
		Error "You have incorrect hostname: $hn"
		Ask "Enter new hostname(or Ctrl+C to exit): "
		hn=$answer
	done
	Info "Your hostname: $hn"
	if [ "$hn" != "$current" ]; then SetHostname "$hn" "$current"; fi
}

# -- release, edition, web server --------------------------------------------------------------------

ChooseRelease() {
	Stage release
	if [ -n "$release" ]; then return 0; fi
	list="$R/etc/apt/sources.list.d/exosoft.list"
	if [ -f "$list" ]; then  # an existing repository is reused: 6-stable6-bookworm -> stable
		suite=$(awk '$1 == "deb" { print $3; exit }' "$list")
		release=${suite#6-}
		release=${release%%-*}
		release=${release%6}
		if [ -n "$release" ]; then return 0; fi
	fi
	while :; do
		echo "Step 1. Select update branch:"
		echo "b) beta — has the latest functionality"
		echo "s) stable — time-tested version"
		Choose
		case "$answer" in
			b) release=beta; return 0 ;;
			s) release=stable; return 0 ;;
		esac
	done
}

EditionMenu() {
	interactive=yes
	while :; do
		echo "Step 2. Select edition:"
		echo "1) ispmanager lite, pro, host with recommended software"
		echo "2) ispmanager lite, pro, host with minimal software"
		if [ "$OSFAMILY" = REDHAT ]; then echo "3) ispmanager business"; fi
		Choose
		case "$answer:$OSFAMILY" in
			1:*) pkgname=ispmanager-lite-common; recommended=yes; return 0 ;;
			2:*) pkgname=ispmanager-lite-common; return 0 ;;
			3:REDHAT) pkgname=ispmanager-business; return 0 ;;
		esac
	done
}

DatabaseMenu() {
	while :; do
		echo "Select the panel's database:"
		echo "1) SQLite — up to 5-10 sites, 5-10 users"
		echo "2) MySQL"
		Choose
		case "$answer" in
			1) dbtype=sqlite; return 0 ;;
			2) dbtype=mysql; return 0 ;;
		esac
	done
}

ChooseEdition() {
	Stage edition
	if [ -z "$pkgname" ]; then
		case "$mgrname" in
			ispmanager-lite) pkgname=ispmanager-lite-common; recommended=yes ;;
			ispmanager-lite-common) pkgname=ispmanager-lite-common ;;
			ispmanager-business|ispmanager-pro) pkgname=ispmanager-business ;;
			coremanager) pkgname=coremanager ;;
			""|ispmanager|*-*) EditionMenu ;;  # a dashed name is cut to its first part: the menu
			*) Error "Incorrect package name"; exit 1 ;;
		esac
	fi
	if [ "$pkgname" = ispmanager-business ] && [ "$OSFAMILY" = DEBIAN ]; then
		Error "ispmanager Business is not supported on Debian-based systems."; exit 1
	fi
	if [ "$pkgname" != coremanager ]; then UsageReport choicepkg; fi
	# After the hostname check, with the database choice: not in the RAM check
	if [ "$pkgname" = ispmanager-lite-common ] && [ -n "$INSTALL_MINI" ] && [ "$dbtype" = mysql ]; then
		Error "Can't use MySQL to run the panel because too little RAM is available"; Cancel
	fi
	if [ -n "$interactive" ] && [ -z "$dbtype" ] && [ -z "$INSTALL_MINI" ]; then DatabaseMenu; fi
	dbtype=${dbtype:-sqlite}
}

WebserverMenu() {
	while :; do
		echo "Select the web server:"
		echo "1) Nginx + Apache"
		echo "2) OpenLiteSpeed"
		echo "3) LiteSpeed"
		Choose
		case "$answer" in
			1) webserver=nginx; return 0 ;;
			2) webserver=openlitespeed; return 0 ;;
			3) webserver=litespeed; return 0 ;;
		esac
	done
}

ChooseWebserver() {
	Stage webserver
	if [ -z "$recommended" ]; then return 0; fi
	if [ -z "$webserver" ]; then
		if [ -n "$interactive" ] && [ -z "$INSTALL_MINI" ]; then WebserverMenu; else webserver=nginx; fi
	fi
	if [ "$webserver" = openlitespeed ] && [ -n "$INSTALL_MINI" ]; then
		Error "Can't use openlitespeed as a web server because too little RAM"; Cancel
	fi
}

CheckInstalled() {
	Stage installed
	if [ "$pkgname" = coremanager ] && PackageInstalled ispmanager-lite-common; then
		Error "ispmanager-lite already installed"; exit 1
	fi
	if PackageInstalled "$pkgname"; then
		Error "You have already installed package $pkgname"
		Error "Do not use install.sh script for upgrading!"
		Error "Use \"/usr/local/mgr5/sbin/pkgupgrade.sh coremanager\" command instead"
		exit 1
	fi
}

# -- repositories ----------------------------------------------------------------------------------

RepoRelease() {  # stable -> stable6; 6.N -> COREmanager's 5.(N+295)
	case "$1" in
		stable|beta) echo "${1}6" ;;
		6.*)
			minor=${1#6.}; minor=${minor%%.*}
			case "$minor" in ""|*[!0-9]*) echo "$1" ;; *) echo "5.$((minor + 295))" ;; esac ;;
		*) echo "$1" ;;
	esac
}

# The releases of the vendor's public mirrors; anything else is a developer install from its
# internal repository (no mirror chosen, so no `Using ...` line).
KnownRelease() {
	echo "$1" | grep -Eq '^(stable|beta|beta5|beta6|stable5|stable6|intbeta|intstable|5\.[0-9]+|6\.[0-9]+)$'
}

KeyName() { if OldRelease "$OSVERSION"; then echo ispsystem.gpg; else echo ispmanager.gpg; fi; }

# The lab's mirror answers for the vendor's public hosts, over http only; the internal host is out of
# the lab's reach, as it is out of everyone's outside the vendor. Empty: not to be fetched.
LabUrl() {
	case "$(HostPort "$1")" in
		"$base_mirror") echo "$1" | sed 's|^https://|http://|' ;;
		"$INTERNAL_REPO_HOST") ;;
		*) echo "$1" ;;
	esac
}

# The repository key, fetched when missing or empty. A failed download leaves an empty file, as
# wget -O does on the real server.
InstallKey() {
	key="$R/etc/apt/trusted.gpg.d/$(KeyName)"
	if [ -s "$key" ]; then return 0; fi
	mkdir -p "${key%/*}"
	: > "$key"
	url=$(LabUrl "https://$mirror/repo/$(KeyName)")
	if [ -n "$url" ]; then Fetch "$url" "$key" >/dev/null || : > "$key"; fi
}

# apt already knows the base suite (here: its list is there and it answers)
BaseRepositoryKnown() {
	[ -f "$base_list" ] && grep -q " base-$OSVERSION " "$base_list" &&
		Fetch "$(LabUrl "http://$base_mirror/repo/$distro")/dists/base-$OSVERSION/InRelease" /dev/null >/dev/null
}

AddBaseRepository() {
	base_list="$R/etc/apt/sources.list.d/ispsystem-base.list"
	printf '\033[1;32m%s\033[0m' "Checking ispmanager-base repo... "
	if BaseRepositoryKnown; then
		Info "Found"
	else
		printf '\033[1;35m%s\033[0m\n' "Not found"
		Info "Adding repository ispmanager-base.."
		mkdir -p "$R/etc/apt/sources.list.d"
		echo "deb http://$base_mirror/repo/$distro base-$OSVERSION main" > "$base_list"
	fi
	internal="$R/etc/apt/sources.list.d/intrepo-base.list"
	if [ "$mirror" = "$INTERNAL_REPO_HOST" ] && [ ! -f "$internal" ]; then
		echo "deb http://$mirror/repo/$distro base-$OSVERSION main" > "$internal"
	fi
}

AptSources() {  # "URL SUITE" of every source apt-get update reads, in its order
	echo "$DIST_URL $OSVERSION"
	for list in "$R"/etc/apt/sources.list.d/*.list; do
		if [ -f "$list" ]; then awk '$1 == "deb" { print $2, $3 }' "$list"; fi
	done
}

# apt-get update over the distribution's repository and the lists: 1 when one answers with errors
# (apt exits 100); one that does not answer is only a warning (apt exits 0) and leaves its packages
# unknown. `available`: the ispmanager-6 suite was fetched.
AptUpdate() {
	warned="" failed="" available=""
	while read -r base suite; do
		index="$base/dists/$suite/InRelease"
		url=$(LabUrl "$index")
		rc=6; status=""
		if [ -n "$url" ]; then rc=0; status=$(Fetch "$url" /dev/null) || rc=$?; fi
		case $rc in
			0) if [ "$suite" = "$ispmanager_suite" ]; then available=yes; fi ;;
			8) echo "E: Failed to fetch $index  $status" >&2; failed=yes ;;
			*) AptFetchWarning "$index" $rc; warned=yes ;;
		esac
	done <<SOURCES
$(AptSources)
SOURCES
	if [ -n "$failed" ]; then
		echo "E: Some index files failed to download. They have been ignored, or old ones used instead." >&2
		return 1
	fi
	if [ -n "$warned" ]; then
		echo "W: Some index files failed to download. They have been ignored, or old ones used instead." >&2
	fi
	return 0
}

RecordRelease() {  # repo.version: the release by its own name (6.N as COREmanager's 5.M)
	mkdir -p "$MGR/etc"
	chmod 750 "$MGR/etc"
	case "$release" in 6.*) RepoRelease "$release" ;; *) echo "$release" ;; esac > "$MGR/etc/repo.version"
}

# One try of the real script's repository stage, in its order: the mirror, the key, the base
# repository, the key again (no-op once there), ispmanager-6's list, apt-get update, repo.version.
RepositoryStage() {
	distro=debian
	if [ "$os_id" = ubuntu ]; then distro=ubuntu; fi
	base_mirror=$(HostPort "$MIRROR_URL")
	mirror=$INTERNAL_REPO_HOST
	if KnownRelease "$release"; then
		mirror=$base_mirror
		Info "Using $mirror"
	fi
	InstallKey
	AddBaseRepository
	InstallKey
	Info "Adding repository ispmanager-6.."
	scheme=http
	case "$release" in intbeta|intstable) scheme=https ;; esac
	ispmanager_suite="6-$(RepoRelease "$release")-$OSVERSION"
	echo "deb $scheme://$mirror/repo/$distro $ispmanager_suite main" > "$R/etc/apt/sources.list.d/exosoft.list"
	AptUpdate || return 1
	RecordRelease
}

AddRepositories() {
	Stage repository
	UsageReport startinstall
	tries=0
	while :; do
		updated=0; RepositoryStage || updated=$?
		if [ $updated = 0 ]; then break; fi
		tries=$((tries + 1))
		Error "Some errors with repository"
		if [ $tries -ge 4 ]; then
			Error "Problems with repository. Please try again in an hour"
			UsageReport errorinstall
			exit 1
		fi
		sleep "$REPO_RETRY_DELAY"
	done
	if [ -n "$noinstall" ]; then exit 0; fi
}

# -- install -----------------------------------------------------------------------------------------

License() {
	Stage license
	tries=0
	while :; do
		if "$MGR/sbin/licctl" fetch ispmgr $activation_key >/dev/null 2>&1; then return 0; fi
		tries=$((tries + 1))
		if [ $tries -ge 3 ]; then break; fi
		sleep "$LICENSE_RETRY_DELAY"
	done
	tail -n 5 "$MGR/var/licctl.log" 2>/dev/null || true
	if [ -n "$activation_key" ]; then Error "Invalid activation key"; Cancel; fi
	Error "Trial license for this IP has expired"
	Error "You have no commercial license for $pkgname or it can't be activated automatically"
	Info "See https://docs.ispmanager.com/coremanager/types-of-licenses"
	if [ -n "$silent" ]; then Cancel; fi
	echo "Please enter activation key or press Enter to exit"
	Ask "Your choice is: "
	if [ -z "$answer" ]; then Cancel; fi
	if ! "$MGR/sbin/licctl" fetch ispmgr "$answer" >/dev/null 2>&1; then Error "Invalid activation key"; Cancel; fi
}

InstallPanel() {
	DpkgBegin
	Stage panel
	Info "Installing $pkgname"
	Pause
	echo "$pkgname" >> "$MGR/etc/emulator-packages"
	if [ -n "$fail2ban" ]; then echo coremanager-pkg-fail2ban >> "$MGR/etc/emulator-packages"; fi
	if [ "$dbtype" = sqlite ]; then
		: > "$MGR/etc/ispmgr.conf.d/db.conf"
	else
		echo coremanager-pkg-mysql >> "$MGR/etc/emulator-packages"
		if [ "$pkgname" = ispmanager-lite-common ]; then echo ispmanager-pkg-mysql >> "$MGR/etc/emulator-packages"; fi
	fi
	if [ "$EU" = true ]; then api=api-eu.ispmanager.com site=eu.ispmanager.com; else api=api.ispmanager.com site=my.ispmanager.com; fi
	printf 'Api https://%s/billmgr\nLicense license.ispmanager.com\nSite https://%s/billmgr\n' "$api" "$site" \
		> "$MGR/etc/billing.settings"
	if [ -n "$recommended" ]; then
		Info "Installing recommended software ($webserver${INSTALL_MINI:+, mini})"
	fi
	DpkgEnd
	Daemons -m core exit
}

Install() {
	Stage install
	if [ -z "$available" ]; then
		echo "E: No packages found" >&2  # apt-cache show's words for a package no index lists
		Error "$pkgname was not found in repos for $OSNAME ( $(uname -m) )"
		Cancel
	fi
	Info "Installing coremanager"
	AptInstallCheck
	tmp=$(mktemp)
	rc=0; Fetch "$MIRROR_URL/repo/ispmanager/mgr5.tar.gz" "$tmp" >/dev/null || rc=$?
	if [ $rc != 0 ]; then
		rm -f "$tmp"; Error "coremanager was not found in repos for $OSNAME ( $(uname -m) )"; exit 1
	fi
	mkdir -p "$MGR"
	DpkgBegin
	tar -xzf "$tmp" -C "$MGR"
	rm -f "$tmp"
	mkdir -p "$MGR/etc/ispmgr.conf.d" "$MGR/var/run"
	printf '{"license_url": "%s"}\n' "$LICENSE_URL" > "$MGR/etc/emulator.json"
	echo coremanager >> "$MGR/etc/emulator-packages"
	Pause
	DpkgEnd
	Daemons exit
	touch "$MGR/var/new_license"
	if [ "$pkgname" != coremanager ]; then
		License
		echo "manager ispmgr" >> "$MGR/etc/mgrlist.conf"
		InstallPanel
	fi
	Stage done
	Info "Your newly installed ispmanager panel is available at:"
	Info "  https://$(PrimaryAddress):1500/ispmgr"
	Info "Login: root"
	Info "Password: <root password>"
}

# -- the run ---------------------------------------------------------------------------------------

Note invocations "$(date -u +%Y-%m-%dT%H:%M:%SZ) $$"
os_id=$(OsReleaseValue ID)
if [ -z "$OSVERSION" ]; then  # --osversion skips the helper packages and the detection
	InstallHelpers
fi
DetectOS
CheckOS
Stage report
UsageReport runinstall
EarlyChecks
Banner
CheckRam
CheckHostname
ChooseRelease
ChooseEdition
ChooseWebserver
CheckInstalled
AddRepositories
Install
exit 0
