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
#   report      usage report "runinstall" (a fresh /etc/machine-id where COREmanager is not installed)
#   banner      "Installing on DEBIAN <codename>", memory and disk tables
#   ram         RAM check (skipped with --silent; at most 1024 MB means a mini install)
#   hostname    hostname check and its prompt (skipped with --ignore-hostname or --silent)
#   release     release menu, unless --release or an existing repository file
#   edition     package name, or the edition menu
#   webserver   web server (OpenLiteSpeed refused on low RAM)
#   installed   already-installed checks (the package; coremanager over a panel)
#   repository  repository files, apt-get update (4 tries when the repository answers with errors)
#   install     COREmanager; license; panel; done
#
# Wording the real script's known output does not pin down (menu item texts, apt's progress lines,
# the End-of-Support notice after its first sentence) is the emulator's own.
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

Error() { printf '\033[1;31m%s\033[0m\n' "$*"; }
Info() { printf '\033[1;32m%s\033[0m\n' "$*"; }

# A question's answer from standard input. The prompt text shows only on a terminal (read -p);
# at end of input `read` fails and `set -e` ends the run with exit 1, as in the real script.
Ask() { read -r -p "Your choice is: " answer; }

Usage() {
	cat >&2 <<'USAGE'
Usage: install.sh [options] [mgrname]
	--osfamily <REDHAT|DEBIAN>	force the OS family when detection fails
	--osversion <VER>	force the OS version when detection fails
	--release <type>	install non-interactively from this release (stable, beta)
	--noinstall	only add the repositories, install no packages
	--install-business	install ispmanager-business (RedHat family only)
	--ignore-hostname	skip the hostname check
	--silent	do not ask for a hostname or an activation key; exit on those errors
	--no-letsencrypt	do not request a Let's Encrypt certificate for the panel
	--le-domain <domain>	domain of the panel's certificate (or env LE_DOMAIN)
	--disable-fail2ban	do not install fail2ban
	--ispmgr5	install ispmanager 5
	--openlitespeed	use OpenLiteSpeed as the web server (ispmanager-lite only)
	--litespeed <SERIAL|TRIAL>	use LiteSpeed with this serial (xxxx-xxxx-xxxx-xxxx) or a trial
	--dbtype <mysql|sqlite>	panel database (default sqlite)
	--mysql-server <mysql|mariadb>	MySQL server (Ubuntu and EL 8-9 only)
	--allow-eol-os	install on an operating system at End of Support
	--activation-key <key>	activate the license with this key
mgrname: ispmanager-lite, ispmanager-lite-common, ispmanager-business, ispmanager, coremanager
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
# (printed), 4 no answer. curl or wget as the real script uses them, else python3 (all a lab host
# has). Proxies are ignored: lab hosts reach only the lab's own services.
Fetch() {
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
		echo "W: Failed to fetch $url  Could not connect to $(HostOf "$DIST_URL")" >&2
		echo "W: Some index files failed to download. They have been ignored, or old ones used instead." >&2
	fi
	echo "Reading package lists..."
	missing=""
	for package in $HELPERS; do
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
		Error "Your operating system is at End of Support (EOL). It no longer gets security updates, and ispmanager may stop working on it. See https://www.ispmanager.com/docs/ispmanager/support-stages#supported-os"
		echo "Continue installation? (y/N)"
		Ask
		if [ "$answer" != y ]; then exit 0; fi  # declined: nothing installed
	fi
	if [ -n "$mysql_server" ]; then
		if [ "$os_id" = debian ] || [ "$OSFAMILY:$OSVERSION" = REDHAT:7 ]; then
			Error "The '--mysql-server' option not supported on this OS"; exit 1
		fi
	fi
}

# -- usage report, root and other early checks ---------------------------------------------------

CleanMachineID() {
	if [ ! -x "$MGR/bin/core" ]; then  # COREmanager not installed before: a machine id of its own
		echo "$(tr -d '-' < /proc/sys/kernel/random/uuid)" > "$R/etc/machine-id"
	fi
}

UsageReport() {  # the real script posts these to the vendor; the emulator sends nothing
	iface=$(ip route show default 2>/dev/null | awk '{ print $5; exit }')
	mac=$(cat "/sys/class/net/$iface/address" || true)
	: "$1 $mac"
}

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
		exit 1
	fi
	if [ "$mem" -le 1024 ]; then INSTALL_MINI=yes; fi
	if [ -n "$INSTALL_MINI" ] && [ "$dbtype" = mysql ]; then
		Error "Can't use MySQL to run the panel because too little RAM is available"; exit 1
	fi
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

SetHostname() {  # as the real script does: the name is cut at its last label in /etc/hostname
	short=${1%.*}
	printf '%s\n' "$short" > "$R/etc/hostname"
	printf '%s\t%s %s\n' "$(PrimaryAddress)" "$1" "$short" >> "$R/etc/hosts"
	if [ -z "$R" ]; then hostname "$short" || true; fi
}

CheckHostname() {
	Stage hostname
	if [ -n "$ignore_hostname" ] || [ -e "$R/.dockerinit" ]; then return 0; fi
	while :; do
		hn=$(CurrentHostname)
		if HostnameValid "$hn"; then Info "Your hostname: $hn"; return 0; fi
		Error "You have incorrect hostname: $hn"
		echo "Enter new hostname(or Ctrl+C to exit)"
		Ask
		if [ -n "$answer" ]; then SetHostname "$answer"; fi
	done
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
		echo "b) beta — new features first, updated every week"
		echo "s) stable — beta versions after a month of testing"
		Ask
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
		Ask
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
		Ask
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
	if [ -n "$interactive" ] && [ -z "$dbtype" ] && [ -z "$INSTALL_MINI" ]; then DatabaseMenu; fi
	dbtype=${dbtype:-sqlite}
}

WebserverMenu() {
	while :; do
		echo "Select the web server:"
		echo "1) Nginx + Apache"
		echo "2) OpenLiteSpeed"
		echo "3) LiteSpeed"
		Ask
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
		Error "Can't use openlitespeed as a web server because too little RAM"; exit 1
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

# apt-get update for the vendor's repository: 1 when it answers with errors (apt exits 100);
# no answer at all is only a warning (apt exits 0) and leaves its packages unknown.
AptUpdateRepo() {
	if [ "$repo_host" != "$(HostOf "$MIRROR_URL")" ]; then
		# not the lab's mirror (the vendor's internal host): out of the lab's reach; not even looked up
		echo "W: Failed to fetch $repo/$distro/dists/$suite/InRelease  Temporary failure resolving '$repo_host'" >&2
		echo "W: Some index files failed to download. They have been ignored, or old ones used instead." >&2
		return 0
	fi
	url="$repo/$distro/dists/$suite/InRelease"
	fetched=0; status=$(Fetch "$url" /dev/null) || fetched=$?
	if [ $fetched = 8 ]; then
		echo "E: Failed to fetch $url  $status" >&2
		echo "E: Some index files failed to download. They have been ignored, or old ones used instead." >&2
		return 1
	fi
	if [ $fetched != 0 ]; then
		echo "W: Failed to fetch $url  Could not connect to $repo_host" >&2
		echo "W: Some index files failed to download. They have been ignored, or old ones used instead." >&2
		return 0
	fi
	available=yes
}

AddRepositories() {
	Stage repository
	distro=debian
	if [ "$os_id" = ubuntu ]; then distro=ubuntu; fi
	repo="$MIRROR_URL/repo"
	case "$release" in
		stable|beta|beta5|beta6|stable5|stable6|intbeta|intstable|5.*|6.*) ;;
		*)  # anything else is a developer install from the vendor's internal repository
			repo="http://$INTERNAL_REPO_HOST/repo"
			echo "Checking ispmanager-base repo... Not found"
			echo "Adding repository ispmanager-base from $INTERNAL_REPO_HOST"
			echo "Adding repository ispmanager-$release from $INTERNAL_REPO_HOST" ;;
	esac
	repo_host=$(HostOf "$repo")
	suite="6-$(RepoRelease "$release")-$OSVERSION"
	mkdir -p "$R/etc/apt/sources.list.d"
	echo "deb $repo/$distro $suite main" > "$R/etc/apt/sources.list.d/exosoft.list"
	echo "deb $repo/$distro base-$OSVERSION main" > "$R/etc/apt/sources.list.d/ispsystem-base.list"
	tries=0
	while :; do
		updated=0; AptUpdateRepo || updated=$?
		if [ $updated = 0 ]; then break; fi
		tries=$((tries + 1))
		Error "Some errors with repository"
		if [ $tries -ge 4 ]; then Error "Problems with repository. Please try again in an hour"; exit 1; fi
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
	if [ -n "$activation_key" ]; then Error "Invalid activation key"; exit 1; fi
	Error "Trial license for this IP has expired"
	Error "You have no commercial license for $pkgname or it can't be activated automatically"
	Info "See https://docs.ispmanager.com/coremanager/types-of-licenses"
	if [ -n "$silent" ]; then exit 1; fi
	echo "Please enter activation key or press Enter to exit"
	Ask
	if [ -z "$answer" ]; then exit 1; fi
	if ! "$MGR/sbin/licctl" fetch ispmgr "$answer" >/dev/null 2>&1; then Error "Invalid activation key"; exit 1; fi
}

InstallPanel() {
	DpkgBegin
	Stage panel
	Info "Installing $pkgname"
	Pause
	echo "$pkgname" >> "$MGR/etc/emulator-packages"
	if [ -n "$fail2ban" ]; then echo coremanager-pkg-fail2ban >> "$MGR/etc/emulator-packages"; fi
	case "$release" in beta*) echo beta ;; *) echo stable ;; esac > "$MGR/etc/repo.version"
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
		Error "$pkgname was not found in repos for $OSNAME ( $(uname -m) )"; exit 1
	fi
	Info "Installing coremanager"
	AptInstallCheck
	tmp=$(mktemp)
	rc=0; Fetch "$repo/ispmanager/mgr5.tar.gz" "$tmp" >/dev/null || rc=$?
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
CleanMachineID
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
