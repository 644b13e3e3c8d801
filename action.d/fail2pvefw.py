# Fail2Ban action file (Python)
#
# Author: the fail2pvefw developers
#
# Bans addresses in an IPSet at datacenter level in Proxmox VE, through the
# PVE REST API, so that the firewall of every node, VM and CT can drop them:
# the same job, parameters and lifecycle as fail2pvefw.conf, without a
# process per ban. fail2ban loads this file into its own server process and
# calls it directly; it hands each ban to the resident `fail2pvefw serve`
# over its Unix socket (one connection kept open) and returns once the ban
# is committed durably to fail2pvefw's queue. The service sends it to PVE.
#
# When the service cannot be reached (not running, restarting, another
# configuration's), the action runs the fail2pvefw program instead, as
# fail2pvefw.conf does, so no ban is ever lost.
#
# This requires:
#   - the program fail2pvefw, by default /usr/bin/fail2pvefw, and its
#     configuration, by default /etc/fail2pvefw/config.toml (see
#     fail2pvefw.conf and fail2pvefw's README);
#   - for speed, the service: `systemctl enable --now fail2pvefw`.
#
# IMPORTANT
#
# The API token lives in fail2pvefw's own configuration file (mode 0600),
# never in jail.local, and never crosses the socket.
#
# Example, in jail.local (the ".py" selects this file):
#
#   [sshd]
#   enabled = true
#   action  = %(action_)s
#             fail2pvefw.py[ipset=fail2ban]
#
# Options (all optional), as in fail2pvefw.conf: ipset, config, bin,
# comment, onstop, mode, timeout; and socket, the service's socket when
# [serve] socket in the configuration moves it.

import json
import os
import socket
import subprocess

from fail2ban.server.actions import ActionBase

DEFAULT_SOCKET = "/run/fail2pvefw/fail2pvefw.sock"

# How long to wait for the service's answer before doing the work with the
# program instead (a commit takes milliseconds).
ANSWER_TIMEOUT = 5.0

# Answers that mean "not for this service": the program does it.
_HAND_BACK = ("denied", "other-config")


class Fail2pvefwAction(ActionBase):
	"""Fail2Ban action which puts banned addresses into a Proxmox VE
	datacenter IPSet through the resident `fail2pvefw serve`, falling back
	to the fail2pvefw program when the service is not there.
	"""

	def __init__(
		self, jail, name, ipset="fail2ban", config="/etc/fail2pvefw/config.toml",
		bin="/usr/bin/fail2pvefw", comment="<name>, <failures> failures",
		onstop="keep", mode="", timeout=30, socket=DEFAULT_SOCKET):
		"""Initialise action.

		Parameters
		----------
		jail : Jail
			The jail which the action belongs to.
		name : str
			Named assigned to the action.
		ipset : str, optional
			The datacenter IPSet to ban in; lower case, 2-64 characters.
			Default "fail2ban".
		config : str, optional
			fail2pvefw's configuration file (PVE host, token, trust).
			Default "/etc/fail2pvefw/config.toml".
		bin : str, optional
			The fail2pvefw program, for the fallback and `-f`.
			Default "/usr/bin/fail2pvefw".
		comment : str, optional
			Text of the entry's comment, after the date; "<name>",
			"<failures>", "<ip>" and "<bantime>" are replaced. fail2pvefw
			appends its ownership tag. Default "<name>, <failures> failures".
		onstop : str, optional
			What happens to this jail's entries in PVE when fail2ban stops
			it: "keep" (they stay; restarts cost no PVE writes) or "remove".
			Default "keep".
		mode : str, optional
			Empty: commit and return at once. "-f": wait for PVE and report
			its real outcome (runs the program each time). Default empty.
		timeout : int, optional
			Seconds the fallback program may take. Default 30.
		socket : str, optional
			The service's socket ([serve] socket).
			Default "/run/fail2pvefw/fail2pvefw.sock".
		"""
		super(Fail2pvefwAction, self).__init__(jail, name)
		self.ipset = ipset
		self.config = config
		self.bin = bin
		self.comment = comment
		if onstop not in ("keep", "remove"):
			raise ValueError("onstop must be keep or remove, not %r" % onstop)
		self.onstop = onstop
		self.mode = mode.strip()
		self.timeout = float(timeout)
		self.socket_path = socket
		self._config_key = os.path.realpath(config)
		self._conn = None
		self._reader = None
		# bypass ban/unban for restored tickets: the bans are still in PVE
		# (flush keeps them there at stop), as with fail2pvefw.conf.
		self.norestored = 1

	# --- the service -------------------------------------------------------

	def _connect(self):
		conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
		conn.settimeout(ANSWER_TIMEOUT)
		try:
			conn.connect(self.socket_path)
		except OSError:
			conn.close()
			raise
		self._conn = conn
		self._reader = conn.makefile("rb")

	def _close(self):
		for part in (self._reader, self._conn):
			try:
				if part is not None:
					part.close()
			except OSError:
				pass
		self._conn = None
		self._reader = None

	def _ask(self, request):
		"""The service's answer (a dict), or None when it cannot be had:
		one reconnect is tried on a broken connection."""
		if self.mode == "-f":
			return None
		request = dict(request, config=self._config_key)
		line = (json.dumps(request) + "\n").encode()
		for attempt in (0, 1):
			try:
				if self._conn is None:
					self._connect()
				self._conn.sendall(line)
				answer = self._reader.readline()
				if not answer:
					raise OSError("the service closed the connection")
				answer = json.loads(answer)
			except (OSError, ValueError) as e:
				self._close()
				if attempt == 0 and not isinstance(e, (FileNotFoundError, ConnectionRefusedError)):
					continue
				self._logSys.debug("fail2pvefw serve not reachable (%s): running %s", e, self.bin)
				return None
			if answer.get("kind") in _HAND_BACK:
				self._logSys.debug("fail2pvefw serve handed back: %s", answer.get("message"))
				return None
			return answer
		return None

	def _run(self, args):
		"""The fallback: the fail2pvefw program, as fail2pvefw.conf runs it."""
		cmd = [self.bin, "--config", self.config]
		if self.mode:
			cmd.append(self.mode)
		cmd.extend(args)
		env = dict(os.environ, FAIL2PVEFW_NO_HANDOFF="1")
		out = subprocess.run(
			cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
			stderr=subprocess.PIPE, timeout=self.timeout, env=env)
		text = (out.stdout + out.stderr).decode(errors="replace").strip()
		return {"ok": out.returncode == 0, "code": out.returncode, "message": text}

	def _do(self, request, args):
		answer = self._ask(request)
		if answer is None:
			answer = self._run(args)
		if not answer.get("ok"):
			message = answer.get("message") or "failed"
			if answer.get("hint"):
				message += " (" + answer["hint"] + ")"
			raise RuntimeError("fail2pvefw %s: exit %s: %s" % (
				request["op"], answer.get("code"), message))
		if answer.get("message"):
			self._logSys.info("%s", answer["message"])

	# --- fail2ban's calls --------------------------------------------------

	def start(self):
		"""Checks that PVE is reachable with the token and the IPSet exists
		(as fail2pvefw.conf's actionstart)."""
		self._do({"op": "start", "ipset": self.ipset}, ["start", "-i", self.ipset])

	def stop(self):
		"""Nothing to tear down: the IPSet belongs to the PVE cluster."""
		self._close()

	def flush(self):
		"""By default keeps this jail's bans in PVE across a restart; with
		onstop = remove, queues the removal of this jail's own entries
		(never anyone else's). True: fail2ban unbans nothing one by one."""
		remove = self.onstop == "remove"
		args = ["flush", "--jail", self._jail.name] + (["--remove"] if remove else [])
		self._do({"op": "flush", "jail": self._jail.name, "remove": remove}, args)
		return True

	def _comment(self, aInfo):
		text = self.comment
		for tag, value in (
				("<name>", self._jail.name), ("<failures>", aInfo.get("failures", 0)),
				("<ip>", aInfo["ip"]), ("<bantime>", aInfo.get("bantime", ""))):
			text = text.replace(tag, str(value))
		return text

	def ban(self, aInfo):
		"""Commits the ban to fail2pvefw's durable queue; the service sends
		it to PVE. Bad input raises (nothing is queued).

		Parameters
		----------
		aInfo : dict
			Dictionary which includes information in relation to
			the ban.
		"""
		ip = str(aInfo["ip"])
		time = aInfo.get("time")
		bantime = int(aInfo.get("bantime", -1))
		failures = int(aInfo.get("failures", 0))
		restored = 1 if aInfo.get("restored") else 0
		comment = self._comment(aInfo)
		request = {
			"op": "ban", "ip": ip, "ipset": self.ipset, "jail": self._jail.name,
			"time": float(time) if time is not None else None, "bantime": bantime,
			"failures": failures, "restored": bool(restored), "comment": comment,
		}
		args = ["ban", ip, "-i", self.ipset]
		if time is not None:
			args += ["-t", str(time)]
		args += ["--jail", self._jail.name, "--bantime", str(bantime),
			"--failures", str(failures), "--restored", str(restored), "-c", comment]
		self._do(request, args)

	def unban(self, aInfo):
		"""Removes exactly the entry ban stored; a missing entry is success.

		Parameters
		----------
		aInfo : dict
			Dictionary which includes information in relation to
			the ban.
		"""
		ip = str(aInfo["ip"])
		self._do(
			{"op": "unban", "ip": ip, "ipset": self.ipset, "jail": self._jail.name},
			["unban", ip, "-i", self.ipset, "--jail", self._jail.name])


Action = Fail2pvefwAction
