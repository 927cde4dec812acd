package exec

import "golang.org/x/sys/unix"

// isEmptyDir reports whether dir is a folder with nothing in it, in three
// system calls (os.Open and Readdirnames take five: an fstat to learn the
// file is not pollable, and a second getdents to see the end). A folder
// whose first batch of entries holds only . and .. is empty: the kernel
// fills the buffer with as many entries as fit, and 4 KiB holds any one.
func isEmptyDir(dir string) bool {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return false
	}
	defer unix.Close(fd)
	var buf [4096]byte
	n, err := unix.Getdents(fd, buf[:])
	if err != nil {
		return false
	}
	consumed, count, _ := unix.ParseDirent(buf[:n], 1, nil)
	return consumed == n && count == 0
}
